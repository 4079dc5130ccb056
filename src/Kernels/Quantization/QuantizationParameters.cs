namespace Quantize.Kernels.Quantization;

/// <summary>
/// The affine map of linear quantization, <c>real = Scale * (q - ZeroPoint)</c>, as ONNX
/// QuantizeLinear/DequantizeLinear and gemmlowp define it. Real 0 is always exactly representable.
/// </summary>
/// <param name="Scale">The real value of one quantization step (positive).</param>
/// <param name="ZeroPoint">The quantized value that stands for real 0, inside the type's range.</param>
public readonly record struct QuantizationParameters(float Scale, int ZeroPoint)
{
    /// <summary>
    /// Parameters that cover <c>[min, max]</c> widened to include 0. Asymmetric maps the range onto the
    /// whole of <paramref name="range"/>; symmetric centres it on 0 (zero point 0 for signed types, the
    /// midpoint for unsigned ones) with the larger of |min| and |max| on both sides. An empty range
    /// (all values 0) gives scale 1, as ONNX's DynamicQuantizeLinear does.
    /// </summary>
    /// <exception cref="ArgumentException">A bound is NaN or infinite.</exception>
    public static QuantizationParameters FromRange(float min, float max, QuantizedRange range, bool symmetric)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max))
            throw new ArgumentException($"The range [{min}, {max}] must be finite.");
        if (min > max) (min, max) = (max, min);
        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);

        if (symmetric)
        {
            float absMax = MathF.Max(-min, max);
            if (absMax == 0f) return new QuantizationParameters(1f, SymmetricZeroPoint(range));
            // The steps on either side of the zero point: for int8 -127..127 that is 127 each way.
            int zeroPoint = SymmetricZeroPoint(range);
            int half = Math.Min(zeroPoint - range.Min, range.Max - zeroPoint);
            return new QuantizationParameters(absMax / half, zeroPoint);
        }

        if (max == min) return new QuantizationParameters(1f, Math.Clamp(0, range.Min, range.Max));
        float scale = (max - min) / range.Steps;
        // ONNX's reference rounds the clamped initial zero point half to even.
        float initial = range.Min - min / scale;
        int zp = (int)MathF.Round(Math.Clamp(initial, range.Min, range.Max), MidpointRounding.ToEven);
        return new QuantizationParameters(scale, zp);
    }

    private static int SymmetricZeroPoint(QuantizedRange range) =>
        range.Min < 0 ? 0 : (range.Min + range.Max + 1) / 2;

    /// <summary>The quantized value of <paramref name="real"/>: round half to even, then saturate (ONNX QuantizeLinear).</summary>
    public int Quantize(float real, QuantizedRange range) => QuantizeLinear.QuantizeScalar(real, Scale, ZeroPoint, range.Min, range.Max);

    /// <summary>The real value of <paramref name="quantized"/>.</summary>
    public float Dequantize(int quantized) => ((float)quantized - ZeroPoint) * Scale;
}
