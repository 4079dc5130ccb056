using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// The elementwise and reduction kernels against their scalar twins and plain references: odd lengths,
/// awkward values (NaN, infinities, zeros, the branch boundaries), every thread count.
/// </summary>
public class ElementwiseKernelTests
{
    private static readonly int[] Lengths = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257];

    private static float[] AwkwardFloats(Random random, int n)
    {
        float[] special = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0.921875f, -0.921875f, 3.925f, -3.925f, 1e-30f, -1e-8f, 88f, -88f, 10f, -10f];
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = random.Next(8) == 0 ? special[random.Next(special.Length)] : (float)(random.NextDouble() * 12 - 6);
        return values;
    }

    private static void AssertClose(float expected, float actual, float relative, string what, float absolute = 1e-30f)
    {
        if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"{what}: expected NaN, got {actual}");
        else if (float.IsInfinity(expected)) Assert.Equal(expected, actual);
        else Assert.True(Math.Abs(expected - actual) <= relative * Math.Abs(expected) + absolute, $"{what}: expected {expected:R}, got {actual:R}");
    }

    private static void CompareWithTwin<TKernel>(TKernel kernel, string name) where TKernel : struct, IFloatKernel
    {
        var random = new Random(name.Length * 7919);
        foreach (int n in Lengths)
        {
            var x = AwkwardFloats(random, n);
            var fast = new float[n];
            var twin = new float[n];
            FloatKernel.Map(kernel, x, fast);
            FloatKernel.MapScalar(kernel, x, twin);
            // The vector exp and MathF.Exp may differ in the last bit; Gelu's 1 + erf(x) for negative x turns
            // that ulp of 1 into an absolute error of about |x| * 6e-8, so it is allowed for.
            for (int i = 0; i < n; i++)
                AssertClose(twin[i], fast[i], 4e-7f, $"{name}({x[i]:R}) at {i} of {n}", float.IsFinite(x[i]) ? 1.2e-7f * Math.Abs(x[i]) : 0);
        }
    }

    [Fact]
    public void Vector_kernels_equal_their_scalar_twins()
    {
        CompareWithTwin(default(ErfKernel), "erf");
        CompareWithTwin(default(GeluKernel), "gelu");
        CompareWithTwin(default(GeluTanhKernel), "gelu-tanh");
        CompareWithTwin(new LeakyReluKernel(0.1f), "leaky");
        CompareWithTwin(new HardSigmoidKernel(0.2f, 0.5f, swish: false), "hardsigmoid");
        CompareWithTwin(new HardSigmoidKernel(1f / 6, 0.5f, swish: true), "hardswish");
    }

    [Fact]
    public void Fast_exp_is_within_two_ulps_of_the_double_reference_and_its_vectors_equal_the_scalar_twin()
    {
        var x = new float[100_003];
        for (int i = 0; i < x.Length; i++) x[i] = -87.25f * i / (x.Length - 1);
        for (int i = 0; i + 8 <= x.Length; i += 8)
        {
            var v256 = FastExp.NonPositive(System.Runtime.Intrinsics.Vector256.Create(x.AsSpan(i, 8)));
            var v128 = FastExp.NonPositive(System.Runtime.Intrinsics.Vector128.Create(x.AsSpan(i, 4)));
            for (int j = 0; j < 8; j++)
            {
                float scalar = FastExp.NonPositive(x[i + j]);
                Assert.Equal(scalar, v256[j]);
                if (j < 4) Assert.Equal(scalar, v128[j]);
                float reference = (float)Math.Exp(x[i + j]);
                float ulp = MathF.BitIncrement(reference) - reference;
                Assert.True(Math.Abs(scalar - reference) <= 2 * ulp, $"exp({x[i + j]:R}) = {scalar:R}, reference {reference:R}");
            }
        }
        Assert.Equal(0f, FastExp.NonPositive(-100f));
        Assert.Equal(0f, FastExp.NonPositive(float.NegativeInfinity));
        Assert.True(float.IsNaN(FastExp.NonPositive(float.NaN)));
        Assert.True(float.IsNaN(FastExp.NonPositive(System.Runtime.Intrinsics.Vector256.Create(float.NaN))[3]));
        Assert.Equal(1f, FastExp.NonPositive(0f));
    }

    [Fact]
    public void Float_erf_is_within_two_ulps_of_the_double_reference()
    {
        var x = new float[200_001];
        for (int i = 0; i < x.Length; i++) x[i] = -5f + i * 5e-5f;
        var y = new float[x.Length];
        FloatKernel.Map(default(ErfKernel), x, y);
        for (int i = 0; i < x.Length; i++)
        {
            float reference = (float)ErfKernel.Erf(x[i]);
            float ulp = MathF.BitIncrement(MathF.Abs(reference)) - MathF.Abs(reference);
            Assert.True(Math.Abs(y[i] - reference) <= 2 * ulp, $"erf({x[i]:R}) = {y[i]:R}, reference {reference:R}");
        }
        FloatKernel.Map(default(ErfKernel), [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f], y);
        Assert.True(float.IsNaN(y[0]));
        Assert.Equal([1f, -1f], y[1..3]);
        Assert.True(float.IsNegative(y[3]) && y[3] == 0);
    }

    [Theory]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(-2.6, -0.9997639655834707)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(4.0, 0.9999999845827421)]
    [InlineData(1e-10, 1.1283791670955126e-10)]
    public void Double_erf_matches_known_values(double x, double expected) =>
        Assert.True(Math.Abs(ErfKernel.Erf(x) - expected) <= 1e-14 * Math.Abs(expected), $"erf({x}) = {ErfKernel.Erf(x):R}");

    [Fact]
    public void Softmax_along_an_inner_axis_equals_softmax_of_the_transposed_rows_for_any_thread_count()
    {
        var random = new Random(5);
        foreach (var (outer, n, inner) in new[] { (1, 1, 1), (3, 5, 7), (2, 17, 9), (40, 33, 50) })
        {
            var x = Enumerable.Range(0, outer * n * inner).Select(_ => (float)(random.NextDouble() * 40 - 20)).ToArray();
            // The same rows, laid out with the normalized axis last.
            var transposed = new float[x.Length];
            for (int o = 0; o < outer; o++)
                for (int k = 0; k < n; k++)
                    for (int i = 0; i < inner; i++)
                        transposed[(o * inner + i) * n + k] = x[(o * n + k) * inner + i];
            // The sums accumulate in a different order (a rounding apart), which log(sum) near 0 shows as ~1e-7 absolute.
            foreach (bool log in new[] { false, true })
            {
                var rows = new float[x.Length];
                Softmax.Rows(transposed, rows, outer * inner, n, 1, log, threads: 1);
                float[]? first = null;
                foreach (int threads in new[] { 1, 2, 3 })
                {
                    var strided = new float[x.Length];
                    Softmax.Rows(x, strided, outer, n, inner, log, threads);
                    for (int o = 0; o < outer; o++)
                        for (int k = 0; k < n; k++)
                            for (int i = 0; i < inner; i++)
                                AssertClose(rows[(o * inner + i) * n + k], strided[(o * n + k) * inner + i], 1e-5f, $"log={log} [{o},{k},{i}]", 1e-6f);
                    if (first is null) first = strided;
                    else Assert.Equal(first, strided);
                }
            }
        }
    }

    [Fact]
    public void Reductions_over_any_axes_match_a_plain_loop()
    {
        var random = new Random(11);
        for (int trial = 0; trial < 200; trial++)
        {
            int rank = random.Next(1, 5);
            var shape = Enumerable.Range(0, rank).Select(_ => random.Next(1, 5)).ToArray();
            var reduced = Enumerable.Range(0, rank).Select(_ => random.Next(2) == 0).ToArray();
            int length = shape.Aggregate(1, (a, b) => a * b);
            var x = Enumerable.Range(0, length).Select(_ => random.Next(-50, 50)).ToArray();
            var outputShape = shape.Select((s, d) => reduced[d] ? 1 : s).ToArray();
            var sum = new int[outputShape.Aggregate(1, (a, b) => a * b)];
            var max = new int[sum.Length];
            Reduction.Run<int, SumReduction<int>>(x, shape, reduced, sum, 0);
            Reduction.Run<int, MaxReduction<int>>(x, shape, reduced, max, int.MinValue);
            var expectedSum = new int[sum.Length];
            var expectedMax = Enumerable.Repeat(int.MinValue, sum.Length).ToArray();
            var index = new int[rank];
            for (int i = 0; i < length; i++)
            {
                int target = 0;
                for (int d = 0; d < rank; d++) target = target * outputShape[d] + (reduced[d] ? 0 : index[d]);
                expectedSum[target] += x[i];
                expectedMax[target] = Math.Max(expectedMax[target], x[i]);
                for (int d = rank - 1; d >= 0 && ++index[d] == shape[d]; d--) index[d] = 0;
            }
            Assert.Equal(expectedSum, sum);
            Assert.Equal(expectedMax, max);
        }
    }

    [Fact]
    public void ArgMax_takes_the_first_or_last_tie_and_the_first_NaN()
    {
        float[] x = [1, 3, 3, float.NaN, 2, float.NaN];
        var first = new long[1];
        ArgMax.Find<float>(x.AsSpan(0, 3), 1, 3, 1, first, selectLast: false);
        Assert.Equal(1, first[0]);
        ArgMax.Find<float>(x.AsSpan(0, 3), 1, 3, 1, first, selectLast: true);
        Assert.Equal(2, first[0]);
        ArgMax.Find<float>(x, 1, 6, 1, first, selectLast: false);
        Assert.Equal(3, first[0]);
    }

    [Fact]
    public void ArgMax_along_an_inner_axis_equals_argmax_of_the_transposed_rows()
    {
        var random = new Random(3);
        foreach (bool last in new[] { false, true })
        {
            int outer = 3, r = 9, inner = 5;
            // Few distinct values, so ties are common; some NaN.
            var x = Enumerable.Range(0, outer * r * inner).Select(_ => random.Next(12) == 0 ? float.NaN : random.Next(4)).ToArray();
            var transposed = new float[x.Length];
            for (int o = 0; o < outer; o++)
                for (int k = 0; k < r; k++)
                    for (int i = 0; i < inner; i++)
                        transposed[(o * inner + i) * r + k] = x[(o * r + k) * inner + i];
            var strided = new long[outer * inner];
            var rows = new long[outer * inner];
            ArgMax.Find<float>(x, outer, r, inner, strided, last);
            ArgMax.Find<float>(transposed, outer * inner, r, 1, rows, last);
            Assert.Equal(rows, strided);
        }
    }

    [Theory]
    [InlineData(TensorElementType.Float8E4M3FN, 0x7E, 448f)]
    [InlineData(TensorElementType.Float8E4M3FN, 0x01, 0.001953125f)]
    [InlineData(TensorElementType.Float8E4M3FN, 0xB8, -1f)]
    [InlineData(TensorElementType.Float8E4M3FNUZ, 0x7F, 240f)]
    [InlineData(TensorElementType.Float8E4M3FNUZ, 0x40, 1f)]
    [InlineData(TensorElementType.Float8E5M2, 0x7B, 57344f)]
    [InlineData(TensorElementType.Float8E5M2, 0x7C, float.PositiveInfinity)]
    [InlineData(TensorElementType.Float8E5M2, 0x3C, 1f)]
    [InlineData(TensorElementType.Float8E5M2FNUZ, 0x7F, 57344f)]
    [InlineData(TensorElementType.Float8E5M2FNUZ, 0x40, 1f)]
    public void Float8_bytes_decode_to_their_values(TensorElementType type, int bits, float expected)
    {
        var value = new float[1];
        Float8.Decode(type, [(byte)bits], value);
        Assert.Equal(expected, value[0]);
    }

    [Theory]
    [InlineData(TensorElementType.Float8E4M3FN, 0x7F)]
    [InlineData(TensorElementType.Float8E4M3FN, 0xFF)]
    [InlineData(TensorElementType.Float8E4M3FNUZ, 0x80)]
    [InlineData(TensorElementType.Float8E5M2, 0x7D)]
    [InlineData(TensorElementType.Float8E5M2FNUZ, 0x80)]
    public void Float8_NaN_patterns_decode_to_NaN(TensorElementType type, int bits)
    {
        var value = new float[1];
        Float8.Decode(type, [(byte)bits], value);
        Assert.True(float.IsNaN(value[0]));
    }

    [Theory]
    [InlineData(0x3F808000u, (ushort)0x3F80)] // halfway, even below: down
    [InlineData(0x3F818000u, (ushort)0x3F82)] // halfway, odd below: up
    [InlineData(0x3F808001u, (ushort)0x3F81)] // above halfway: up
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)] // float max rounds to infinity, as numpy does
    [InlineData(0xFF800000u, (ushort)0xFF80)] // -infinity stays
    public void Bfloat16_rounds_to_nearest_even(uint bits, ushort expected) =>
        Assert.Equal(expected, Cast.ToBFloat16(BitConverter.UInt32BitsToSingle(bits)));
}
