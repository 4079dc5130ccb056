namespace Quantize.Kernels.Quantization;

/// <summary>
/// A positive real multiplier as a Q31 fixed-point value and a power-of-two shift, gemmlowp's
/// output stage for requantizing int32 accumulators: <c>real ≈ Multiplier / 2^31 * 2^Shift</c>.
/// Applying it uses only integer arithmetic, so every platform gives the same bits.
/// </summary>
/// <param name="Multiplier">The mantissa in Q31, in [2^30, 2^31), or 0 for a zero multiplier.</param>
/// <param name="Shift">The exponent: positive shifts left, negative shifts right (rounding).</param>
public readonly record struct FixedPointMultiplier(int Multiplier, int Shift)
{
    /// <summary>Represents <paramref name="real"/> (non-negative, finite) as mantissa and shift.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The multiplier is negative, not finite, or too large.</exception>
    public static FixedPointMultiplier FromReal(double real)
    {
        if (!double.IsFinite(real) || real < 0)
            throw new ArgumentOutOfRangeException(nameof(real), real, "A requantization multiplier must be finite and non-negative.");
        if (real == 0) return new FixedPointMultiplier(0, 0);
        // real = fraction * 2^exponent with fraction in [0.5, 1).
        int exponent = Math.ILogB(real) + 1;
        double fraction = Math.ScaleB(real, -exponent);
        long q = (long)Math.Round(fraction * (1L << 31), MidpointRounding.AwayFromZero);
        if (q == 1L << 31)
        {
            q /= 2;
            exponent++;
        }
        if (exponent > 30)
            throw new ArgumentOutOfRangeException(nameof(real), real, "A requantization multiplier this large cannot be represented.");
        if (exponent < -31)
            return new FixedPointMultiplier(0, 0); // smaller than one step of any int32 result
        return new FixedPointMultiplier((int)q, exponent);
    }

    /// <summary><paramref name="value"/> times this multiplier, rounded to nearest (ties away from zero, as gemmlowp).</summary>
    public int Apply(int value)
    {
        int left = Shift > 0 ? Shift : 0;
        int right = Shift > 0 ? 0 : -Shift;
        int shifted = (int)Math.Clamp((long)value << left, int.MinValue, int.MaxValue);
        return RoundingDivideByPowerOfTwo(SaturatingRoundingDoublingHighMul(shifted, Multiplier), right);
    }

    /// <summary>The high 32 bits of <c>2·a·b</c>, rounded, saturating the single overflow case (gemmlowp).</summary>
    public static int SaturatingRoundingDoublingHighMul(int a, int b)
    {
        if (a == int.MinValue && b == int.MinValue) return int.MaxValue;
        long product = (long)a * b;
        long nudge = product >= 0 ? 1L << 30 : 1 - (1L << 30);
        return (int)((product + nudge) / (1L << 31));
    }

    /// <summary><c>x / 2^exponent</c> rounded to nearest, ties away from zero (gemmlowp's RoundingDivideByPOT).</summary>
    public static int RoundingDivideByPowerOfTwo(int x, int exponent)
    {
        if (exponent == 0) return x;
        int mask = (int)((1L << exponent) - 1);
        int remainder = x & mask;
        int threshold = (mask >> 1) + (x < 0 ? 1 : 0);
        return (x >> exponent) + (remainder > threshold ? 1 : 0);
    }
}
