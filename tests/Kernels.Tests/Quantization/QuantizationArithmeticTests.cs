using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Tests.Quantization;

/// <summary>Scale/zero-point choice and gemmlowp's fixed-point requantization, checked against float64 arithmetic.</summary>
public class QuantizationArithmeticTests
{
    [Theory]
    [InlineData(TensorElementType.Int8, false, false, -128, 127)]
    [InlineData(TensorElementType.Int8, true, false, -127, 127)]
    [InlineData(TensorElementType.Int8, false, true, -64, 63)]
    [InlineData(TensorElementType.UInt8, false, false, 0, 255)]
    [InlineData(TensorElementType.UInt8, false, true, 0, 127)]
    [InlineData(TensorElementType.Int16, false, false, -32768, 32767)]
    [InlineData(TensorElementType.UInt16, false, false, 0, 65535)]
    [InlineData(TensorElementType.Int4, false, false, -8, 7)]
    [InlineData(TensorElementType.Int4, true, false, -7, 7)]
    [InlineData(TensorElementType.UInt4, false, false, 0, 15)]
    public void Ranges_follow_the_type_and_options(TensorElementType type, bool narrow, bool reduced, int min, int max) =>
        Assert.Equal(new QuantizedRange(min, max), QuantizedRange.Of(type, narrow, reduced));

    [Fact]
    public void Asymmetric_parameters_represent_zero_exactly_and_cover_the_range()
    {
        var random = new Random(5);
        foreach (var type in new[] { TensorElementType.UInt8, TensorElementType.Int8, TensorElementType.Int4, TensorElementType.UInt4, TensorElementType.Int16 })
        {
            var range = QuantizedRange.Of(type);
            for (int trial = 0; trial < 2000; trial++)
            {
                float a = (random.NextSingle() - 0.7f) * MathF.Pow(10, random.Next(-4, 4));
                float b = (random.NextSingle() - 0.3f) * MathF.Pow(10, random.Next(-4, 4));
                var p = QuantizationParameters.FromRange(a, b, range, symmetric: false);
                Assert.InRange(p.ZeroPoint, range.Min, range.Max);
                Assert.Equal(0f, p.Dequantize(p.Quantize(0f, range)));
                // The ends of the (zero-widened) range land within one step of the float64 ideal.
                double lo = Math.Min(0, Math.Min(a, b)), hi = Math.Max(0, Math.Max(a, b));
                double step = (hi - lo) / range.Steps;
                Assert.InRange(p.Scale, step * (1 - 1e-6), step * (1 + 1e-6));
                Assert.True(Math.Abs(p.Dequantize(p.Quantize((float)lo, range)) - lo) <= step * 1.0001, $"{type} [{a},{b}] lo");
                Assert.True(Math.Abs(p.Dequantize(p.Quantize((float)hi, range)) - hi) <= step * 1.0001, $"{type} [{a},{b}] hi");
            }
        }
    }

    [Fact]
    public void Symmetric_parameters_centre_on_zero()
    {
        var int8 = QuantizationParameters.FromRange(-0.5f, 2.54f, QuantizedRange.Of(TensorElementType.Int8, narrow: true), symmetric: true);
        Assert.Equal(0, int8.ZeroPoint);
        Assert.Equal(2.54 / 127, int8.Scale, 1e-7);
        var uint8 = QuantizationParameters.FromRange(-3f, 1f, QuantizedRange.Of(TensorElementType.UInt8), symmetric: true);
        Assert.Equal(128, uint8.ZeroPoint);
        Assert.Equal(3.0 / 127, uint8.Scale, 1e-7);
        var int4 = QuantizationParameters.FromRange(-1f, 0.7f, QuantizedRange.Of(TensorElementType.Int4), symmetric: true);
        Assert.Equal(0, int4.ZeroPoint);
        Assert.Equal(1.0 / 7, int4.Scale, 1e-7);
        // All zeros: a usable scale of 1, as DynamicQuantizeLinear defines.
        Assert.Equal(new QuantizationParameters(1f, 0), QuantizationParameters.FromRange(0f, 0f, QuantizedRange.Of(TensorElementType.Int8), symmetric: true));
    }

    [Fact]
    public void Fixed_point_multiplier_matches_float64_rounding()
    {
        var random = new Random(11);
        for (int trial = 0; trial < 20000; trial++)
        {
            double real = Math.Pow(2, -random.Next(0, 24)) * (0.5 + random.NextDouble() * 0.5);
            var m = FixedPointMultiplier.FromReal(real);
            Assert.InRange(m.Multiplier, 1 << 30, int.MaxValue);
            // The representation is within half a unit in the last place of Q31.
            double represented = m.Multiplier / (double)(1L << 31) * Math.Pow(2, m.Shift);
            Assert.True(Math.Abs(represented - real) <= real * Math.Pow(2, -30), $"multiplier {real}");

            int x = random.Next(int.MinValue / 2, int.MaxValue / 2);
            // Exact result of the represented multiplier, rounded half away from zero (gemmlowp's rule): the
            // fixed-point path may differ from it only by the double rounding of its two steps.
            double exact = x * represented;
            double expected = Math.Round(exact, MidpointRounding.AwayFromZero);
            int actual = m.Apply(x);
            Assert.True(Math.Abs(actual - expected) <= 1, $"{x} * {real}: {actual} vs {expected}");
            Assert.True(Math.Abs(actual - exact) < 1.0, $"{x} * {real}: {actual} vs exact {exact}");
        }
    }

    [Theory]
    [InlineData(0.5, 1 << 30, 0)]
    [InlineData(0.25, 1 << 30, -1)]
    [InlineData(1.0, 1 << 30, 1)]
    [InlineData(0.75, 1610612736, 0)]
    public void Fixed_point_multiplier_known_representations(double real, int multiplier, int shift) =>
        Assert.Equal(new FixedPointMultiplier(multiplier, shift), FixedPointMultiplier.FromReal(real));

    [Theory]
    [InlineData(5, 1, 3)]      // 2.5 rounds away from zero
    [InlineData(-5, 1, -3)]
    [InlineData(7, 2, 2)]      // 1.75
    [InlineData(-6, 2, -2)]    // -1.5 rounds away from zero
    [InlineData(6, 2, 2)]      // 1.5
    public void Rounding_divide_by_power_of_two_rounds_half_away_from_zero(int x, int exponent, int expected) =>
        Assert.Equal(expected, FixedPointMultiplier.RoundingDivideByPowerOfTwo(x, exponent));

    [Fact]
    public void Doubling_high_mul_saturates_its_one_overflow() =>
        Assert.Equal(int.MaxValue, FixedPointMultiplier.SaturatingRoundingDoublingHighMul(int.MinValue, int.MinValue));
}
