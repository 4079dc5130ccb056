namespace Quantize.Core.Inspection;

/// <summary>Which op types quantize, dequantize or compute on quantized values.</summary>
internal static class QuantizationOps
{
    private static readonly HashSet<string> OnnxDefault = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    };

    private static readonly HashSet<string> OnnxMicrosoft = new(StringComparer.Ordinal)
    {
        "MatMulNBits", "MatMulBnb4", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
        "GatherBlockQuantized", "QuantizeLinear", "DequantizeLinear",
    };

    private static readonly HashSet<string> TensorFlowExact = new(StringComparer.Ordinal)
    {
        "Dequantize", "Requantize", "RequantizePerChannel", "RequantizationRange", "RequantizationRangePerChannel",
    };

    /// <summary>
    /// ONNX: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger and QLinear*;
    /// in com.microsoft also MatMulNBits, QAttention, QGemm, DynamicQuantizeMatMul and the other Q-prefixed
    /// ops (a capital after the Q, so QuickGelu is not one).
    /// </summary>
    public static bool IsOnnx(string domain, string opType)
    {
        if (domain.Length == 0 || domain == OpHistogram.OnnxDefaultDomain)
            return OnnxDefault.Contains(opType) || opType.StartsWith("QLinear", StringComparison.Ordinal);
        if (domain == "com.microsoft")
            return OnnxMicrosoft.Contains(opType) || (opType.Length > 1 && opType[0] == 'Q' && char.IsUpper(opType[1]));
        return false;
    }

    /// <summary>
    /// TensorFlow: QuantizeV2, Quantized* (QuantizedConv2D, QuantizedMatMul...), QuantizeAndDequantize*,
    /// Dequantize, Requantize, RequantizationRange, and the FakeQuant* ops of quantization-aware training.
    /// </summary>
    public static bool IsTensorFlow(string op) =>
        op.StartsWith("Quantize", StringComparison.Ordinal)
        || op.StartsWith("FakeQuant", StringComparison.Ordinal)
        || TensorFlowExact.Contains(op);
}
