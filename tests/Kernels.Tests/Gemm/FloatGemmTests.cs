using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>The float GEMM against a float64 reference, its AVX2 kernel against the scalar twin, and thread-count determinism.</summary>
public class FloatGemmTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 1, 5, 3 }, { 6, 16, 16 }, { 7, 17, 15 }, { 13, 300, 33 }, { 1, 1000, 70 }, { 121, 257, 48 }, { 250, 64, 17 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matches_float64_and_the_scalar_twin(int m, int k, int n)
    {
        var random = new Random(m * 7919 + k * 31 + n);
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        float[] b = Enumerable.Range(0, k * n).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        foreach (bool transposed in new[] { false, true })
        {
            float[] source = transposed ? Transpose(b, k, n) : b;
            var packed = PackedFloatMatrix.Pack(source, k, n, transposed);
            var c = new float[m * n];
            FloatGemm.Multiply(a, m, packed, c, bias);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = bias[j], magnitude = Math.Abs(bias[j]);
                    for (int t = 0; t < k; t++)
                    {
                        sum += (double)a[i * k + t] * b[t * n + j];
                        magnitude += Math.Abs((double)a[i * k + t] * b[t * n + j]);
                    }
                    Assert.True(Math.Abs(c[i * n + j] - sum) <= magnitude * k * 1.2e-7 + 1e-6, $"({i},{j}) {c[i * n + j]} vs {sum}");
                }
            }

            // The portable kernel computes the same fused multiply-adds in the same order: identical bits.
            var fast = new float[m * n];
            var slow = new float[m * n];
            FloatGemm.Multiply(a, m, packed, fast);
            FloatGemm.Multiply(FloatKernelKind.Portable, a, m, packed, slow);
            Assert.Equal(slow, fast);
        }
    }

    [Theory]
    [InlineData(6, 8, 0, 8)]
    [InlineData(6, 300, 17, 256)]
    [InlineData(13, 37, 5, 31)]
    [InlineData(12, 1000, 0, 7)]
    public unsafe void The_vector_A_packing_equals_its_scalar_twin(int m, int k, int k0, int kc)
    {
        var random = new Random(m * 31 + k);
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        fixed (float* pa = a)
        {
            var view = new GemmA(pa, m, k);
            for (int row = 0; row < m; row += FloatPacking.Rows)
            {
                int rows = Math.Min(FloatPacking.Rows, m - row);
                var fast = new float[kc * FloatPacking.Rows];
                var twin = new float[kc * FloatPacking.Rows];
                fixed (float* pf = fast, pt = twin)
                {
                    FloatPacking.PackA(view, row, rows, k0, kc, pf);
                    FloatPacking.PackAScalar(view, row, rows, k0, kc, pt);
                }
                Assert.Equal(twin, fast);
                for (int t = 0; t < kc; t++) Assert.Equal(a[row * k + k0 + t], fast[t * FloatPacking.Rows]); // and it is A, K-major
            }
        }
    }

    [Theory]
    [InlineData(130, 700, 300)] // many panels: split by columns
    [InlineData(500, 300, 20)]  // two panels, several row blocks: split by rows
    public void Results_are_identical_for_every_thread_count(int m, int k, int n)
    {
        var random = new Random(5);
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var packed = PackedFloatMatrix.Pack(Enumerable.Range(0, k * n).Select(_ => random.NextSingle() - 0.5f).ToArray(), k, n);
        var one = new float[m * n];
        FloatGemm.Multiply(a, m, packed, one, default, 1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = new float[m * n];
            FloatGemm.Multiply(a, m, packed, many, default, threads);
            Assert.Equal(one, many);
        }
    }

    private static float[] Transpose(float[] b, int k, int n)
    {
        var t = new float[n * k];
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < n; j++) t[j * k + i] = b[i * n + j];
        }
        return t;
    }
}
