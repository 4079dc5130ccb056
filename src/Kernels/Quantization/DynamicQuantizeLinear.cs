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

    /// <summary>
    /// <see cref="Quantize(ReadOnlySpan{float}, Span{byte}, QuantizedRange)"/> over <paramref name="length"/> values at
    /// <paramref name="x"/>, split over threads: min and max are exact, so the parameters and every byte are what one thread gives.
    /// </summary>
    internal static unsafe QuantizationParameters Quantize(float* x, byte* y, int length, QuantizedRange range, int threads)
    {
        if (ParallelRanges.Parts((length + ParallelRanges.ElementAlignment - 1) / ParallelRanges.ElementAlignment, ParallelRanges.ElementAlignment, threads) <= 1)
            return Quantize(new ReadOnlySpan<float>(x, length), new Span<byte>(y, length), range);
        nint source = (nint)x, target = (nint)y;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        bool anyNaN = false;
        var gate = new object();
        ParallelRanges.ForElements(length, threads, (start, end) =>
        {
            var (lo, hi, nan) = FloatRange.Of(new ReadOnlySpan<float>((float*)source + start, end - start));
            lock (gate)
            {
                min = Math.Min(min, lo);
                max = Math.Max(max, hi);
                anyNaN |= nan;
            }
        });
        var parameters = FromRange(min, max, anyNaN, range);
        ParallelRanges.ForElements(length, threads, (start, end) =>
            QuantizeLinear.Quantize(new ReadOnlySpan<float>((float*)source + start, end - start), parameters.Scale, parameters.ZeroPoint,
                new Span<byte>((byte*)target + start, end - start), range));
        return parameters;
    }

    private static QuantizationParameters ChooseParameters(ReadOnlySpan<float> x, QuantizedRange range)
    {
        if (x.IsEmpty) return new QuantizationParameters(1f, 0);
        var (min, max, hasNaN) = FloatRange.Of(x);
        return FromRange(min, max, hasNaN, range);
    }

    private static QuantizationParameters FromRange(float min, float max, bool hasNaN, QuantizedRange range)
    {
        if (hasNaN)
            throw new ArgumentException("DynamicQuantizeLinear input contains NaN.", "x");
        if (float.IsInfinity(min) || float.IsInfinity(max))
            throw new ArgumentException("DynamicQuantizeLinear input contains an infinity.", "x");
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
