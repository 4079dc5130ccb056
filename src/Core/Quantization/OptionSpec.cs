using System.Globalization;
using System.Numerics;
using Quantize.Kernels.Models;

namespace Quantize.Core.Quantization;

/// <summary>
/// One quantizer option as the front ends spell it: <c>--per-channel</c> on the command line, <c>PerChannel</c> as
/// MSBuild item metadata. Both parse the value with <see cref="Apply"/>, so the option exists once.
/// </summary>
/// <param name="Name">The command-line name, without dashes (kebab case).</param>
/// <param name="Metadata">The MSBuild item metadata name (Pascal case).</param>
/// <param name="Values">The accepted values, as help text (e.g. "true|false").</param>
/// <param name="Description">What it does.</param>
/// <param name="Apply">Returns the options with this value set; throws <see cref="ArgumentException"/> for a bad value.</param>
public sealed record OptionSpec(string Name, string Metadata, string Values, string Description, Func<QuantizationOptions, string, QuantizationOptions> Apply)
{
    /// <summary>Every quantizer option, in the order help lists them.</summary>
    public static IReadOnlyList<OptionSpec> All { get; } =
    [
        new("mode", "Mode", "weights|dynamic|static|int4|round", "What to quantize: int8 weights only; int8 weights and run-time activations; weights and calibrated activations (QDQ); 4-bit MatMul weights; float weights rounded to 256 levels (TensorFlow GraphDefs). Default: static for an ONNX model with Conv when calibration data is given, weights for a GraphDef, dynamic otherwise.",
            (o, v) => o with { Mode = Enum<QuantizationMode>(v, "mode") }),
        new("per-channel", "PerChannel", "true|false", "One scale per output channel (default true).", (o, v) => o with { PerChannel = Bool(v, "per-channel") }),
        new("graphdef-per-channel", "GraphDefPerChannel", "true|false", "TensorFlow GraphDefs, weights mode: qint8 per output channel (Dequantize SCALED) instead of quantize_weights' quint8 per tensor (default false).",
            (o, v) => o with { GraphDefPerChannel = Bool(v, "graphdef-per-channel") }),
        new("weight-type", "WeightType", "int8|uint8", "8-bit weight type (default int8).", (o, v) => o with { WeightType = Type(v, "weight-type") }),
        new("activation-type", "ActivationType", "uint8|int8", "8-bit activation type (default uint8).", (o, v) => o with { ActivationType = Type(v, "activation-type") }),
        new("symmetric-weights", "SymmetricWeights", "true|false", "Zero point 0 for weights (default true).", (o, v) => o with { SymmetricWeights = Bool(v, "symmetric-weights") }),
        new("symmetric-activations", "SymmetricActivations", "true|false", "Symmetric activation ranges (default false).", (o, v) => o with { SymmetricActivations = Bool(v, "symmetric-activations") }),
        new("reduce-range", "ReduceRange", "true|false", "7-bit weights, as ONNX Runtime's reduce_range: the fast int8 kernel on AVX2 without VNNI (default true for dynamic, false otherwise).", (o, v) => o with { ReduceRange = Bool(v, "reduce-range") }),
        new("include-nodes", "IncludeNodes", "PATTERN;...", "Quantize only nodes whose name matches (wildcards * and ?).", (o, v) => o with { IncludeNodes = List(v) }),
        new("exclude-nodes", "ExcludeNodes", "PATTERN;...", "Leave nodes whose name matches float (wildcards * and ?).", (o, v) => o with { ExcludeNodes = List(v) }),
        new("include-op-types", "IncludeOpTypes", "OP;...", "Quantize only these op types.", (o, v) => o with { IncludeOpTypes = List(v) }),
        new("exclude-op-types", "ExcludeOpTypes", "OP;...", "Leave these op types float.", (o, v) => o with { ExcludeOpTypes = List(v) }),
        new("minimum-size", "MinimumSize", "N", "Weights with fewer elements stay float (default 1024).", (o, v) => o with { MinimumSize = Number<long>(v, "minimum-size") }),
        new("calibration-method", "CalibrationMethod", "minmax|percentile|entropy|mse", "How activation ranges come from calibration data (default minmax).",
            (o, v) => o with { CalibrationMethod = Enum<CalibrationMethod>(v, "calibration-method") }),
        new("percentile", "Percentile", "P", "The percentile method's coverage (default 99.999).", (o, v) => o with { Percentile = Number<double>(v, "percentile") }),
        new("calibration-samples", "CalibrationSamples", "N", "Use at most N calibration samples (default all).", (o, v) => o with { CalibrationSamples = Number<int>(v, "calibration-samples") }),
        new("smoothing", "Smoothing", "0..1", "Activation smoothing strength with calibration data (default: dynamic 0.8, int4 0.5; 0 = off).",
            (o, v) => o with { Smoothing = Number<double>(v, "smoothing") }),
        new("int4-block-size", "Int4BlockSize", "16|32|64|128|256", "Int4 block length along K (default 32).", (o, v) => o with { Int4BlockSize = Number<int>(v, "int4-block-size") }),
        new("int4-symmetric", "Int4Symmetric", "true|false", "Int4 blocks without zero points (default true).", (o, v) => o with { Int4Symmetric = Bool(v, "int4-symmetric") }),
        new("int4-format", "Int4Format", "matmulnbits|dequantizelinear", "Int4 as com.microsoft MatMulNBits (default) or opset-21 DequantizeLinear.",
            (o, v) => o with { Int4Format = Enum<Int4Format>(v, "int4-format") }),
        new("min-cosine", "MinimumCosine", "C", "Accuracy target: keep the most damaging layers float until every output's mean cosine to float is at least C.",
            (o, v) => o with { MinimumCosine = Number<double>(v, "min-cosine") }),
        new("report-layers", "ReportLayers", "true|false", "Also report every intermediate tensor's accuracy, worst first (needs evaluation data; default false).",
            (o, v) => o with { ReportLayers = Bool(v, "report-layers") }),
        new("threads", "Threads", "N", "Threads for calibration and evaluation (default: all cores; the output does not depend on it).",
            (o, v) => o with { Threads = Number<int>(v, "threads") }),
    ];

    private static bool Bool(string value, string name) => value.Trim().ToLowerInvariant() switch
    {
        "true" or "yes" or "on" or "1" => true,
        "false" or "no" or "off" or "0" => false,
        _ => throw new ArgumentException($"{name}: '{value}' is not true or false."),
    };

    private static T Enum<T>(string value, string name) where T : struct, System.Enum =>
        System.Enum.TryParse<T>(value.Trim(), ignoreCase: true, out var parsed) && System.Enum.IsDefined(parsed) && !char.IsDigit(value.Trim().FirstOrDefault())
            ? parsed
            : throw new ArgumentException($"{name}: '{value}' is not one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}.");

    private static TensorElementType Type(string value, string name) => value.Trim().ToLowerInvariant() switch
    {
        "int8" => TensorElementType.Int8,
        "uint8" => TensorElementType.UInt8,
        _ => throw new ArgumentException($"{name}: '{value}' is not int8 or uint8."),
    };

    private static T Number<T>(string value, string name) where T : struct, INumber<T> =>
        T.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : throw new ArgumentException($"{name}: '{value}' is not a number.");

    private static string[] List(string value) =>
        value.Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
