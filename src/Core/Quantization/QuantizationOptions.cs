using Quantize.Kernels.Models;

namespace Quantize.Core.Quantization;

/// <summary>What the quantizer does to a model.</summary>
public enum QuantizationMode
{
    /// <summary>Int8 weights behind DequantizeLinear; activations stay float.</summary>
    Weights,

    /// <summary>Int8 weights; activations quantized at run time (DynamicQuantizeLinear + MatMulInteger), as ONNX Runtime's quantize_dynamic.</summary>
    Dynamic,

    /// <summary>Weights and activations in QDQ format (QuantizeLinear/DequantizeLinear pairs), activation ranges from calibration data.</summary>
    Static,

    /// <summary>MatMul weights as 4-bit blocks (<c>com.microsoft</c> MatMulNBits, or opset-21 blocked DequantizeLinear).</summary>
    Int4,

    /// <summary>TensorFlow GraphDefs only (graph_transforms' <c>round_weights</c>): float weights snapped to the centres of 256 buckets, for smaller compressed downloads.</summary>
    Round,
}

/// <summary>How activation ranges are chosen from calibration statistics.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,

    /// <summary>The range that holds <see cref="QuantizationOptions.Percentile"/> percent of the absolute values seen.</summary>
    Percentile,

    /// <summary>The threshold that minimizes the KL divergence between the float histogram and its quantized form (TensorRT's method).</summary>
    Entropy,

    /// <summary>The threshold that minimizes the mean squared quantization error over the histogram.</summary>
    Mse,
}

/// <summary>How <see cref="QuantizationMode.Int4"/> writes its weights.</summary>
public enum Int4Format
{
    /// <summary><c>com.microsoft</c> MatMulNBits, ONNX Runtime's layout (the default).</summary>
    MatMulNBits,

    /// <summary>Standard ONNX: an int4 initializer, a blocked DequantizeLinear (opset 21) and MatMul.</summary>
    DequantizeLinear,
}

/// <summary>
/// The quantizer's options: the one definition that the MSBuild task's item metadata and the
/// <c>dotnet quantize</c> options both map onto. Defaults follow ONNX Runtime's quantizer except where noted.
/// </summary>
public sealed record QuantizationOptions
{
    /// <summary>The mode. Default <see cref="QuantizationMode.Dynamic"/>.</summary>
    public QuantizationMode Mode { get; init; } = QuantizationMode.Dynamic;

    /// <summary>One scale per output channel (column of a MatMul weight, output channel of a Conv) instead of one per tensor. Default true.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>
    /// TensorFlow GraphDefs in weights mode: qint8 weights with one range per output channel (Dequantize mode=SCALED
    /// with axis, TensorFlow 2) instead of quantize_weights' quint8 MIN_FIRST per tensor. Default false (TensorFlow's format).
    /// </summary>
    public bool GraphDefPerChannel { get; init; }

    /// <summary>The 8-bit weight type: int8 or uint8. Default int8.</summary>
    public TensorElementType WeightType { get; init; } = TensorElementType.Int8;

    /// <summary>The 8-bit activation type: uint8 or int8. Default uint8 (dynamic mode requires uint8: DynamicQuantizeLinear produces it).</summary>
    public TensorElementType ActivationType { get; init; } = TensorElementType.UInt8;

    /// <summary>Symmetric weights (zero point 0; int8 uses -127..127). Default true.</summary>
    public bool SymmetricWeights { get; init; } = true;

    /// <summary>Symmetric activations (zero point 0, or 128 for uint8). Default false.</summary>
    public bool SymmetricActivations { get; init; }

    /// <summary>
    /// 7-bit weights (ONNX Runtime's reduce_range), for CPUs whose 8-bit multiply saturates (AVX2 without VNNI). Null means
    /// the mode's default (<see cref="EffectiveReduceRange"/>).
    /// </summary>
    public bool? ReduceRange { get; init; }

    /// <summary>
    /// The reduce-range setting in effect: <see cref="ReduceRange"/>, or true for <see cref="QuantizationMode.Dynamic"/>
    /// and false otherwise. Measured on all-MiniLM-L6-v2 (docs/QUANTIZER.md): 7-bit weights let every weight pair take the
    /// byte-quad int8 kernel on AVX2, 1.56x our fp32 instead of 1.29x, for a mean-pooled cosine of 0.99677 instead of 0.99837.
    /// </summary>
    public bool EffectiveReduceRange => ReduceRange ?? Mode == QuantizationMode.Dynamic;

    /// <summary>Only nodes whose name matches one of these patterns (<c>*</c> and <c>?</c> wildcards) are quantized; empty means all.</summary>
    public IReadOnlyCollection<string> IncludeNodes { get; init; } = [];

    /// <summary>Nodes whose name matches one of these patterns (<c>*</c> and <c>?</c> wildcards) stay float.</summary>
    public IReadOnlyCollection<string> ExcludeNodes { get; init; } = [];

    /// <summary>Only these op types are quantized; empty means every op type the mode handles.</summary>
    public IReadOnlyCollection<string> IncludeOpTypes { get; init; } = [];

    /// <summary>Op types to leave float.</summary>
    public IReadOnlyCollection<string> ExcludeOpTypes { get; init; } = [];

    /// <summary>Weights with fewer elements stay float (TensorFlow and TFLite use 1024 too).</summary>
    public long MinimumSize { get; init; } = 1024;

    /// <summary>How activation ranges come from calibration data (static mode). Default <see cref="CalibrationMethod.MinMax"/>, as ONNX Runtime.</summary>
    public CalibrationMethod CalibrationMethod { get; init; } = CalibrationMethod.MinMax;

    /// <summary>The percentile kept by <see cref="CalibrationMethod.Percentile"/>. Default 99.999.</summary>
    public double Percentile { get; init; } = 99.999;

    /// <summary>At most this many calibration samples are used; 0 means all.</summary>
    public int CalibrationSamples { get; init; }

    /// <summary>The int4 block size along K: a power of two from 16 to 256. Default 32.</summary>
    public int Int4BlockSize { get; init; } = 32;

    /// <summary>Symmetric int4 blocks (no zero points). Default true.</summary>
    public bool Int4Symmetric { get; init; } = true;

    /// <summary>How int4 weights are written. Default <see cref="Int4Format.MatMulNBits"/>.</summary>
    public Int4Format Int4Format { get; init; } = Int4Format.MatMulNBits;

    /// <summary>
    /// The accuracy target: the smallest acceptable cosine similarity between each float and quantized output on the
    /// evaluation samples (the mean over samples, for every output). When set, the most damaging layers are kept float,
    /// one at a time, until it holds, giving up at most half of the quantized layers.
    /// </summary>
    public double? MinimumCosine { get; init; }

    /// <summary>
    /// Activation smoothing strength (SmoothQuant's alpha, 0 to 1; 0 turns it off). With calibration data, the dynamic
    /// and int4 modes divide each MatMul input channel by s = max|x|^alpha / max|w|^(1-alpha) and multiply the weight's
    /// row by s: the same function, but activation outliers move into the weights (dynamic: where per-column scales
    /// absorb them; int4: salient input channels get finer weight steps). Null means the mode's default, measured on
    /// all-MiniLM-L6-v2 (docs/QUANTIZER.md): 0.8 for dynamic, 0.5 for int4.
    /// </summary>
    public double? Smoothing { get; init; }

    /// <summary>The smoothing strength in effect: <see cref="Smoothing"/>, or the mode's default.</summary>
    public double EffectiveSmoothing => Smoothing ?? Mode switch { QuantizationMode.Dynamic => 0.8, QuantizationMode.Int4 => 0.5, _ => 0 };

    /// <summary>
    /// Also compare every intermediate tensor the float and quantized models share on the evaluation samples, and
    /// report them worst SQNR first (the report's <c>accuracy.layers</c>). Does not change the model. Default false.
    /// </summary>
    public bool ReportLayers { get; init; }

    /// <summary>Threads for calibration and evaluation runs. Results do not depend on it. Default: the processor count.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Checks the options against each other; throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public void Validate()
    {
        if (WeightType is not (TensorElementType.Int8 or TensorElementType.UInt8))
            throw new ArgumentException($"weight type {WeightType} is not supported: use int8 or uint8.");
        if (ActivationType is not (TensorElementType.Int8 or TensorElementType.UInt8))
            throw new ArgumentException($"activation type {ActivationType} is not supported: use uint8 or int8.");
        if (Mode == QuantizationMode.Dynamic && ActivationType != TensorElementType.UInt8)
            throw new ArgumentException("dynamic mode quantizes activations with DynamicQuantizeLinear, which produces uint8: use activation type uint8.");
        if (Int4BlockSize < 16 || Int4BlockSize > 256 || (Int4BlockSize & (Int4BlockSize - 1)) != 0)
            throw new ArgumentException($"int4 block size {Int4BlockSize} is not a power of two from 16 to 256.");
        if (Percentile is <= 0 or > 100)
            throw new ArgumentException($"percentile {Percentile} is not in (0, 100].");
        if (MinimumSize < 0) throw new ArgumentException($"minimum size {MinimumSize} is negative.");
        if (CalibrationSamples < 0) throw new ArgumentException($"calibration sample limit {CalibrationSamples} is negative.");
        if (MinimumCosine is { } c && (c <= -1 || c > 1)) throw new ArgumentException($"minimum cosine {c} is not in (-1, 1].");
        if (Smoothing is < 0 or > 1 || (Smoothing is double a && double.IsNaN(a))) throw new ArgumentException($"smoothing {Smoothing} is not in [0, 1].");
        if (Threads < 1) throw new ArgumentException($"threads {Threads} must be at least 1.");
    }
}
