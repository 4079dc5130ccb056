using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>
/// The AVX-512 float kernel against the AVX2 one (the same fused multiply-adds in the same order: identical bits), against
/// the portable scalar twin and a float64 reference, through both the driver's own packing and A packed once.
/// </summary>
public class FloatKernelAvx512Tests
{
    // M = 1, 4, 5, 8, 9, 15 reach each row-count path and a short last block; a last panel of at most 8 columns the
    // half-width tile, of 9-15 a partly stored full one; K not a multiple of 8 the packer's tail; K > 256 several K blocks (C += tile).
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 1, 300, 40 }, { 4, 7, 16 }, { 5, 33, 1 }, { 8, 16, 8 }, { 9, 600, 17 }, { 15, 65, 31 },
        { 16, 256, 16 }, { 17, 257, 33 }, { 48, 100, 9 }, { 20, 40, 196 }, { 32, 70, 21 }, { 130, 513, 70 }, { 300, 40, 200 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Equals_the_AVX2_kernel_bit_for_bit_and_the_reference(int m, int k, int n)
    {
        RequireAvx512();
        var random = new Random(m * 7919 + k * 31 + n);
        float[] a = Values(random, m * k);
        float[] b = Values(random, k * n);
        var packed = PackedFloatMatrix.Pack(b, k, n);
        foreach (int threads in new[] { 1, 2 })
        {
            var wide = new float[m * n];
            var avx2 = new float[m * n];
            var portable = new float[m * n];
            FloatGemm.Multiply(FloatKernelKind.Avx512, a, m, packed, wide, default, threads);
            FloatGemm.Multiply(FloatKernelKind.Avx2, a, m, packed, avx2, default, threads);
            FloatGemm.Multiply(FloatKernelKind.Portable, a, m, packed, portable, default, threads);
            Assert.Equal(avx2, wide);
            Assert.Equal(portable, wide);
            AssertNearReference(a, b, m, k, n, wide);
        }
    }

    [Theory]
    [InlineData(64, 27, 49, 49)]    // a 7 x 7 map: three panels and one column
    [InlineData(70, 577, 100, 130)] // a short last row block, several K blocks, C rows wider than the product
    [InlineData(3, 9, 20, 20)]
    public void Packed_once_rows_equal_the_AVX2_kernel_bit_for_bit(int m, int k, int n, int ldc)
    {
        RequireAvx512();
        var random = new Random(m + k + n);
        float[] a = Values(random, m * k);
        float[] b = Values(random, k * n);
        var packed = PackedFloatMatrix.Pack(b, k, n);
        var wideRows = PackedFloatRows.Pack(a, m, k, FloatKernelKind.Avx512);
        var avx2Rows = PackedFloatRows.Pack(a, m, k, FloatKernelKind.Avx2);
        Assert.Equal(FloatKernelKind.Avx512, wideRows.Kernel);
        foreach (int threads in new[] { 1, 2 })
        {
            var wide = Enumerable.Repeat(7f, (m - 1) * ldc + n).ToArray();
            var avx2 = Enumerable.Repeat(7f, (m - 1) * ldc + n).ToArray();
            FloatGemm.Multiply(wideRows, packed, wide, ldc, threads);
            FloatGemm.Multiply(avx2Rows, packed, avx2, ldc, threads);
            Assert.Equal(avx2, wide);
            var dense = new float[m * n];
            for (int i = 0; i < m; i++) wide.AsSpan(i * ldc, n).CopyTo(dense.AsSpan(i * n));
            AssertNearReference(a, b, m, k, n, dense);
            for (int i = 0; i < m - 1; i++) Assert.All(wide.AsSpan(i * ldc + n, ldc - n).ToArray(), v => Assert.Equal(7f, v)); // gaps untouched
        }
    }

    [Theory]
    [InlineData(16, 16, 8, 0, 8)]
    [InlineData(16, 40, 300, 17, 256)]
    [InlineData(35, 12, 37, 5, 31)]
    [InlineData(12, 12, 1000, 0, 7)]
    [InlineData(20, 8, 64, 3, 61)]
    public unsafe void The_row_packing_equals_its_scalar_twin(int height, int m, int k, int k0, int kc)
    {
        var random = new Random(m * 31 + k);
        float[] a = Values(random, m * k);
        fixed (float* pa = a)
        {
            var view = new GemmA(pa, m, k);
            for (int row = 0; row < m; row += height)
            {
                int rows = Math.Min(height, m - row);
                var fast = new float[kc * height];
                var twin = new float[kc * height];
                fixed (float* pf = fast, pt = twin)
                {
                    FloatRowPacking.Pack(view, row, rows, k0, kc, pf, height);
                    FloatRowPacking.PackScalar(view, row, rows, k0, kc, pt, height);
                }
                Assert.Equal(twin, fast);
                for (int t = 0; t < kc; t++)
                {
                    for (int r = 0; r < height; r++)
                        Assert.Equal(r < rows ? a[(row + r) * k + k0 + t] : 0f, twin[t * height + r]); // A, K-major, zero rows past M
                }
            }
        }
    }

    private static void RequireAvx512()
    {
        if (!Avx512F.IsSupported) Assert.Skip("This CPU has no AVX-512F: the AVX-512 float kernel cannot run here.");
    }

    private static float[] Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => random.NextSingle() * 2 - 1).ToArray();

    private static void AssertNearReference(float[] a, float[] b, int m, int k, int n, float[] c)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (int t = 0; t < k; t++)
                {
                    sum += (double)a[i * k + t] * b[t * n + j];
                    magnitude += Math.Abs((double)a[i * k + t] * b[t * n + j]);
                }
                Assert.True(Math.Abs(c[i * n + j] - sum) <= magnitude * k * 1.2e-7 + 1e-6, $"({i},{j}) {c[i * n + j]} vs {sum}");
            }
        }
    }
}
