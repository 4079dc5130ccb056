using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>
/// TensorFlow's reference conversions between floats and its quantized types (quint8, qint8, qint32) for a [min, max]
/// range: the range is cut into 2^bits steps, the lowest quantized value standing for min. Double precision, as
/// TensorFlow's reference functions (FloatToQuantized, QuantizedToFloat, QuantizationRangeForMultiplication).
/// </summary>
internal readonly record struct QuantizedKind(long Lowest, long Highest)
{
    public static readonly QuantizedKind UInt8 = new(0, 255);
    public static readonly QuantizedKind Int8 = new(-128, 127);
    public static readonly QuantizedKind Int32 = new(int.MinValue, int.MaxValue);

    private double Steps => (double)(Highest - Lowest) + 1;

    /// <summary>The quantized value of <paramref name="value"/>, not clamped (an offset may fall outside the type).</summary>
    public long ToQuantizedUnclamped(double value, float min, float max)
    {
        if (min == max) return Lowest;
        double range = ((double)max - min) * (Steps / (Steps - 1));
        double scale = Steps / range;
        return (long)(Math.Round(value * scale, MidpointRounding.AwayFromZero) - Math.Round(min * scale, MidpointRounding.AwayFromZero)) + Lowest;
    }

    public long ToQuantized(double value, float min, float max) => Math.Clamp(ToQuantizedUnclamped(value, min, max), Lowest, Highest);

    public double ToFloat(long value, float min, float max)
    {
        if (min == max) return min;
        double range = ((double)max - min) * (Steps / (Steps - 1));
        return min + (value - Lowest) * (range / Steps);
    }

    /// <summary>The float one quantized step stands for.</summary>
    public float StepSize(float min, float max) => (max - min) / (float)(Highest - Lowest);

    /// <summary>The qint32 range of a product of two 8-bit values (QuantizationRangeForMultiplication).</summary>
    public static (float Min, float Max) ProductRange(float minA, float maxA, float minB, float maxB)
    {
        float step = UInt8.StepSize(minA, maxA) * UInt8.StepSize(minB, maxB);
        return (step * int.MinValue, step * int.MaxValue);
    }

    public static QuantizedKind Of(Models.TensorElementType type) => type switch
    {
        Models.TensorElementType.UInt8 => UInt8,
        Models.TensorElementType.Int8 => Int8,
        Models.TensorElementType.Int32 => Int32,
        _ => throw new NotSupportedException($"{type.DisplayName()} is not a TensorFlow quantized type the runtime supports."),
    };
}
