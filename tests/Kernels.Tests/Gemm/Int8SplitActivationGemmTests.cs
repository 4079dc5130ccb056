using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>
/// Full-range weights in byte quads with A split at 127 (AVX2 without VNNI): exact against the 64-bit reference whether
/// A's values over 127 are none, rare (rows of B added one by one) or common (a second quad pass), and the vector
/// row additions equal their scalar twin.
/// </summary>
public unsafe class Int8SplitActivationGemmTests
{
    public static TheoryData<int, int, int, double> Cases() => new()
    {
        // rows, depth, columns, fraction of A over 127
        { 1, 1, 1, 0.0 }, { 1, 33, 17, 0.01 }, { 6, 64, 16, 0.02 }, { 7, 31, 33, 0.2 }, { 13, 129, 40, 0.005 },
        { 97, 1030, 18, 0.001 }, { 200, 96, 70, 0.5 }, { 3, 2100, 5, 1.0 }, { 64, 576, 64, 0.002 }, { 50, 147, 64, 0.4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Equals_the_reference(int m, int k, int n, double over)
    {
        if (!Avx2.IsSupported) return;
        var random = new Random(m * 7919 + k * 31 + n);
        foreach (bool signedB in new[] { true, false })
        {
            foreach (bool signedA in new[] { false, true })
            {
                // Full-range weights, with 127s and -128s that make every pair saturate under vpmaddubsw.
                byte[] b = Enumerable.Range(0, k * n).Select(i => (byte)(i % 11 == 0 ? (signedB ? 127 : 255) : i % 13 == 0 ? (signedB ? 128 : 0) : random.Next(256))).ToArray();
                int[] zeroPointsB = signedB ? Enumerable.Range(0, n).Select(j => j % 3 - 1).ToArray() : Enumerable.Range(0, n).Select(j => 120 + j % 9).ToArray();
                var a = SmallValues(m * k, over, signedA, random);
                int zeroPointA = signedA ? -3 : 2;
                var expected = new int[m * n];
                Int8Gemm.MultiplyReference(a, signedA, m, k, zeroPointA, b, signedB, n, zeroPointsB, expected);

                var packed = PackedInt8Matrix.PackForMostlySmallActivations(b, k, n, zeroPointsB, signedB, saturatingQuads: true);
                Assert.True(packed.Format == Int8PackFormat.Pairs16 || packed.SplitsActivations || packed.SaturationSafe);
                foreach (int threads in new[] { 1, 2, 3 })
                {
                    var actual = new int[m * n];
                    Int8Gemm.MultiplyInt32(a, m, zeroPointA, signedA, packed, actual, threads, Int8KernelChoice.Avx2);
                    Assert.True(expected.AsSpan().SequenceEqual(actual), $"m={m} k={k} n={n} over={over} signedA={signedA} signedB={signedB} threads={threads} {packed.Format}");
                }
            }
        }
    }

    [Fact]
    public void Signed_weights_with_zero_zero_points_take_the_split_quads()
    {
        var b = Enumerable.Range(0, 576 * 64).Select(i => (sbyte)(i % 255 - 127)).ToArray();
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan());
        var split = PackedInt8Matrix.PackForMostlySmallActivations(bytes, 576, 64, [0], signed: true, saturatingQuads: true);
        Assert.Equal(Int8PackFormat.Quads, split.Format);
        Assert.True(split.SplitsActivations);
        Assert.Equal(0, split.CorrectionCount);
        // The same weights packed for any 8-bit A on a saturating CPU take 16-bit pairs.
        Assert.Equal(Int8PackFormat.Pairs16, PackedInt8Matrix.Pack(bytes, 576, 64, [0], transposed: false, signed: true, format: null, saturatingQuads: true).Format);
        // 7-bit weights cannot saturate with any A: plain quads, nothing to split.
        var seven = Enumerable.Range(0, 576 * 64).Select(i => (byte)(sbyte)(i % 127 - 63)).ToArray();
        var plain = PackedInt8Matrix.PackForMostlySmallActivations(seven, 576, 64, [0], signed: true, saturatingQuads: true);
        Assert.Equal(Int8PackFormat.Quads, plain.Format);
        Assert.False(plain.SplitsActivations);
        Assert.True(plain.SaturationSafe);
        // Where quads do not saturate (VNNI, ARM dot product) nothing is split.
        Assert.False(PackedInt8Matrix.PackForMostlySmallActivations(bytes, 576, 64, [0], signed: true, saturatingQuads: false).SplitsActivations);
    }

    [Theory]
    [InlineData(1, 40, 16, false)]
    [InlineData(9, 100, 37, false)]
    [InlineData(9, 100, 37, true)]
    [InlineData(4, 333, 130, true)]
    public void Vector_row_additions_equal_the_scalar_twin(int m, int k, int n, bool signedA)
    {
        if (!Avx2.IsSupported) return;
        var random = new Random(k + n);
        byte[] b = Enumerable.Range(0, k * n).Select(_ => (byte)random.Next(256)).ToArray();
        var packed = PackedInt8Matrix.PackForMostlySmallActivations(b, k, n, [0], signed: true, saturatingQuads: true);
        var a = SmallValues(m * k, 0.1, signedA, random);
        int[] start = Enumerable.Range(0, m * n).Select(_ => random.Next(-1000, 1000)).ToArray();
        int[] vector = [.. start], scalar = [.. start];
        fixed (byte* pa = a, pb = packed.Data)
        fixed (int* pv = vector, ps = scalar)
        {
            Int8SplitActivationGemm.AddExcessRows(pa, signedA, k, pb + packed.Offset, n, pv, 0, m, vector: true);
            Int8SplitActivationGemm.AddExcessRows(pa, signedA, k, pb + packed.Offset, n, ps, 0, m, vector: false);
        }
        Assert.Equal(scalar, vector);
        Assert.NotEqual(start, scalar);
    }

    /// <summary>A whose share of values over 127 (as the kernel sees them: int8 flipped by 128) is about <paramref name="over"/>, with 255s among them.</summary>
    private static byte[] SmallValues(int count, double over, bool signedA, Random random) =>
        Enumerable.Range(0, count).Select(_ =>
        {
            int seen = random.NextDouble() < over ? (random.Next(4) == 0 ? 255 : 128 + random.Next(128)) : random.Next(128);
            return (byte)(signedA ? seen ^ 0x80 : seen);
        }).ToArray();
}
