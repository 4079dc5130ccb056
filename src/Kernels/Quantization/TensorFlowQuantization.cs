namespace Quantize.Kernels.Quantization;

/// <summary>
/// TensorFlow's legacy 8-bit arithmetic (tensorflow/core/kernels/quantization_utils.h, written from its documented
/// behaviour): a quint8 value q stands for <c>min + q * (max - min) / 255</c>, the "MIN_FIRST" convention of
/// graph_transforms' <c>quantize_weights</c>, <c>QuantizeV2</c> and <c>Dequantize</c>.
/// </summary>
public static class TensorFlowQuantization
{
    /// <summary>
    /// C's FLT_MIN, the smallest normal float: graph_transforms starts its running maximum there (not at the lowest float),
    /// so a tensor of zeros or negative values gets this maximum.
    /// </summary>
    public static readonly float SmallestNormal = BitConverter.Int32BitsToSingle(0x00800000);

    /// <summary>
    /// The range quantize_weights gives a float tensor: its smallest and largest value (the maximum starting at
    /// <see cref="SmallestNormal"/>, as TensorFlow's), widened to contain 0, and made non-empty by <see cref="NonEmpty"/>.
    /// </summary>
    public static (float Min, float Max) WeightRange(ReadOnlySpan<float> values)
    {
        float min = float.MaxValue, max = SmallestNormal;
        foreach (float v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        min = Math.Min(min, 0f);
        max = Math.Max(0f, max);
        return NonEmpty(min, max);
    }

    /// <summary>
    /// quantize_weights' answer to a degenerate range (0 becomes [0, 1]; a positive v becomes [v, 2v]; a negative v [v, v/2]).
    /// With the maximum starting at FLT_MIN it only applies to ranges given from elsewhere.
    /// </summary>
    public static (float Min, float Max) NonEmpty(float min, float max)
    {
        if (min != max) return (min, max);
        if (Math.Abs(min) < 0.000001f) return (min, min + 1f);
        return min > 0 ? (min, 2f * min) : (min, min / 2f);
    }

    /// <summary>
    /// A float to quint8 in [min, max] as TensorFlow's <c>FloatToQuantized</c>: in double precision,
    /// <c>round(x * 255 / (max - min)) - round(min * 255 / (max - min))</c>, halves away from zero, clamped to 0..255.
    /// </summary>
    public static byte QuantizeMinFirst(float value, float min, float max)
    {
        if (min == max) return 0;
        double scale = 255.0 / ((double)max - min);
        double q = Math.Round(value * scale, MidpointRounding.AwayFromZero) - Math.Round(min * scale, MidpointRounding.AwayFromZero);
        return (byte)Math.Clamp(q, 0, 255);
    }

    /// <summary>Quantizes every value of <paramref name="values"/> into <paramref name="destination"/> with <see cref="QuantizeMinFirst(float, float, float)"/>.</summary>
    public static void QuantizeMinFirst(ReadOnlySpan<float> values, float min, float max, Span<byte> destination)
    {
        if (destination.Length < values.Length) throw new ArgumentException("The destination is shorter than the values.", nameof(destination));
        for (int i = 0; i < values.Length; i++) destination[i] = QuantizeMinFirst(values[i], min, max);
    }

    /// <summary>
    /// The step and offset of <c>Dequantize(mode=MIN_FIRST)</c> for quint8: step (max - min) / 255 in float, and min
    /// rounded to a whole number of steps, so that the quantized 0 of a range containing 0 maps to exactly 0.
    /// A value q dequantizes to <c>offset + q * step</c>.
    /// </summary>
    public static (float Step, float Offset) MinFirstStep(float min, float max)
    {
        float step = (float)((max - min) / 255.0);
        float offset = max == min || step == 0 ? min : MathF.Round(min / step, MidpointRounding.AwayFromZero) * step;
        return (step, offset);
    }

    /// <summary>quint8 to float as <c>Dequantize(mode=MIN_FIRST)</c>.</summary>
    public static void DequantizeMinFirst(ReadOnlySpan<byte> values, float min, float max, Span<float> destination)
    {
        var (step, offset) = MinFirstStep(min, max);
        for (int i = 0; i < values.Length; i++) destination[i] = offset + values[i] * step;
    }

    /// <summary>
    /// The scale of <c>Dequantize(mode=SCALED)</c> for qint8: the larger of <c>min / -128</c> (or -127 with a narrow range)
    /// and <c>max / 127</c>; a value q dequantizes to <c>q * scale</c>.
    /// </summary>
    public static float ScaledStep(float min, float max, bool narrowRange) =>
        Math.Max(min / (narrowRange ? -127f : -128f), max / 127f);

    /// <summary>The scale of <c>Dequantize(mode=SCALED)</c> for quint8: <c>max / 255</c>.</summary>
    public static float ScaledStepUnsigned(float max) => max / 255f;

    /// <summary>
    /// round_weights' bucket centre for <paramref name="value"/>: the range [min, max] cut into <paramref name="steps"/>
    /// equal buckets (float arithmetic, as TensorFlow), the value replaced by its bucket's centre. Unlike TensorFlow,
    /// the maximum stays in the last bucket instead of moving half a bucket above the range.
    /// </summary>
    public static float RoundToBucket(float value, float min, float max, int steps)
    {
        float width = (max - min) / steps;
        int bucket = (int)MathF.Floor((value - min) / width);
        bucket = Math.Clamp(bucket, 0, steps - 1);
        return min + width * (bucket + 0.5f);
    }
}
