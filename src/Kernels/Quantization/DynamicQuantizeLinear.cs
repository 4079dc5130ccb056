using System.Numerics.Tensors;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// ONNX DynamicQuantizeLinear: uint8 parameters chosen from the data's range (widened to include
/// 0), then QuantizeLinear with them. Bit-exact with ONNX's reference.
/// </summary>
public static class DynamicQuantizeLinear
{
    private static readonly QuantizedRange UInt8 = new(0, 255);

    /// <summary>The scale and zero point ONNX's DynamicQuantizeLinear picks for <paramref name="x"/>.</summary>
    public static QuantizationParameters ChooseParameters(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) return new QuantizationParameters(1f, 0);
        float min = TensorPrimitives.Min(x);
        float max = TensorPrimitives.Max(x);
        if (float.IsNaN(min) || float.IsNaN(max))
            throw new ArgumentException("DynamicQuantizeLinear input contains NaN.", nameof(x));
        if (float.IsInfinity(min) || float.IsInfinity(max))
            throw new ArgumentException("DynamicQuantizeLinear input contains an infinity.", nameof(x));
        return QuantizationParameters.FromRange(min, max, UInt8, symmetric: false);
    }

    /// <summary>Quantizes <paramref name="x"/> into <paramref name="y"/> and returns the parameters used.</summary>
    public static QuantizationParameters Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        var parameters = ChooseParameters(x);
        QuantizeLinear.Quantize(x, parameters.Scale, parameters.ZeroPoint, y, UInt8);
        return parameters;
    }
}
