using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Tests.Quantization;

/// <summary>The one-pass min/max (and the int8 GEMM's row sums) equal their scalar twins on every length and special value.</summary>
public class FloatRangeTests
{
    [Fact]
    public void Vector_min_max_equals_the_scalar_twin()
    {
        var random = new Random(4);
        foreach (int length in new[] { 0, 1, 7, 31, 32, 33, 47, 64, 100, 1000, 4097 })
        {
            for (int trial = 0; trial < 20; trial++)
            {
                float[] x = Enumerable.Range(0, length).Select(_ => (random.NextSingle() - 0.5f) * MathF.Pow(10, random.Next(-3, 4))).ToArray();
                if (length > 0 && trial % 4 == 1) x[random.Next(length)] = float.PositiveInfinity;
                if (length > 0 && trial % 4 == 2) x[random.Next(length)] = -0f;
                var expected = FloatRange.OfScalar(x);
                var actual = FloatRange.Of(x);
                Assert.Equal(expected.HasNaN, actual.HasNaN);
                Assert.Equal(expected.Min, actual.Min);
                Assert.Equal(expected.Max, actual.Max);
                if (length > 0)
                {
                    // A NaN anywhere, including the overlapping last block, is seen.
                    x[trial % 3 == 0 ? length - 1 : random.Next(length)] = float.NaN;
                    Assert.True(FloatRange.Of(x).HasNaN, $"length {length}");
                }
            }
        }
    }

    [Fact]
    public void Row_sums_equal_the_scalar_twin()
    {
        var random = new Random(5);
        foreach (int length in new[] { 0, 1, 31, 32, 33, 64, 65, 784, 1000 })
        {
            byte[] row = new byte[length];
            random.NextBytes(row);
            if (length > 2) { row[0] = 255; row[1] = 0; row[2] = 128; }
            foreach (bool signed in new[] { false, true })
                Assert.Equal(Quantize.Kernels.Gemm.Int8OutputStage.RowSumScalar(row, signed), Quantize.Kernels.Gemm.Int8OutputStage.RowSum(row, signed));
        }
    }
}
