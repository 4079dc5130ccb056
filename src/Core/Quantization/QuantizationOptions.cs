using Quantize.Kernels.Models;

namespace Quantize.Core.Quantization;

/// <summary>What the quantizer does to a model.</summary>
public enum QuantizationMode
{
    /// <summary>Int8 weights behind DequantizeLinear; activations stay float.</summary>
    Weights,

    /// <summary>Int8 weights; activations quantized at run time (DynamicQuantizeLinear + MatMulInteger), as ONNX Runtime's quantize_dynamic.</summary>
    Dynamic,
}

/// <summary>
/// The quantizer's options: the one definition that the MSBuild task's item metadata and the
/// <c>dotnet quantize</c> options both map onto.
/// </summary>
public sealed record QuantizationOptions
{
    /// <summary>The mode. Default <see cref="QuantizationMode.Dynamic"/>.</summary>
    public QuantizationMode Mode { get; init; } = QuantizationMode.Dynamic;

    /// <summary>One scale per output channel (column of a MatMul weight) instead of one per tensor. Default true.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>The weight type: int8 (symmetric, -127..127) or uint8 (asymmetric). Default int8.</summary>
    public TensorElementType WeightType { get; init; } = TensorElementType.Int8;

    /// <summary>Weights with fewer elements stay float (TensorFlow and TFLite use 1024 too).</summary>
    public long MinimumSize { get; init; } = 1024;

    /// <summary>Node names to leave float.</summary>
    public IReadOnlyCollection<string> ExcludeNodes { get; init; } = [];

    /// <summary>Op types to leave float.</summary>
    public IReadOnlyCollection<string> ExcludeOpTypes { get; init; } = [];
}
