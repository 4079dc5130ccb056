namespace Quantize.Kernels.Quantization;

/// <summary>
/// ONNX DynamicQuantizeLinear: uint8 parameters chosen from the data's range (widened to include
/// 0), then QuantizeLinear with them. Bit-exact with ONNX's reference.
/// </summary>
public static class DynamicQuantizeLinear
{
    private static readonly QuantizedRange UInt8 = new(0, 255);

    /// <summary>The scale and zero point ONNX's DynamicQuantizeLinear picks for <paramref name="x"/>.</summary>
    public static QuantizationParameters ChooseParameters(ReadOnlySpan<float> x) => ChooseParameters(x, UInt8);

    /// <summary>
    /// As <see cref="Quantize(ReadOnlySpan{float}, Span{byte})"/> but over <paramref name="range"/> (e.g. 0..127, for
    /// kernels that need 7-bit activations): the data's range, widened to include 0, mapped onto it.
    /// </summary>
    public static QuantizationParameters Quantize(ReadOnlySpan<float> x, Span<byte> y, QuantizedRange range)
    {
        var parameters = ChooseParameters(x, range);
        QuantizeLinear.Quantize(x, parameters.Scale, parameters.ZeroPoint, y, range);
        return parameters;
    }

    private static QuantizationParameters ChooseParameters(ReadOnlySpan<float> x, QuantizedRange range)
    {
        if (x.IsEmpty) return new QuantizationParameters(1f, 0);
        var (min, max, hasNaN) = FloatRange.Of(x);
        if (hasNaN)
            throw new ArgumentException("DynamicQuantizeLinear input contains NaN.", nameof(x));
        if (float.IsInfinity(min) || float.IsInfinity(max))
            throw new ArgumentException("DynamicQuantizeLinear input contains an infinity.", nameof(x));
        return QuantizationParameters.FromRange(min, max, range, symmetric: false);
    }

    /// <summary>Quantizes <paramref name="x"/> into <paramref name="y"/> and returns the parameters used.</summary>
    public static QuantizationParameters Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        var parameters = ChooseParameters(x);
        QuantizeLinear.Quantize(x, parameters.Scale, parameters.ZeroPoint, y, UInt8);
        return parameters;
    }
}
