using Quantize.Kernels.Gemm;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>The 4-bit block GEMM against a float64 reference of the dequantized weights, its scalar twin, and thread counts.</summary>
public class Int4GemmTests
{
    public static TheoryData<int, int, int, int, string> Cases() => new()
    {
        { 1, 32, 1, 32, "none" }, { 1, 4096 / 8, 33, 32, "packed" }, { 3, 100, 17, 16, "float" }, { 2, 257, 20, 64, "packed" },
        { 1, 1000, 9, 256, "none" }, { 5, 48, 64, 16, "packed" }, { 4, 128, 40, 128, "float" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_float64_of_the_dequantized_weights(int m, int k, int n, int blockSize, string zeroPoints)
    {
        var random = new Random(m * 31 + k * 7 + n + blockSize);
        int blocks = (k + blockSize - 1) / blockSize;
        var q = new byte[n * blocks * blockSize / 2];
        random.NextBytes(q);
        float[] scales = Enumerable.Range(0, n * blocks).Select(_ => 0.001f + random.NextSingle() * 0.05f).ToArray();
        byte[] packedZp = zeroPoints == "packed" ? Enumerable.Range(0, n * ((blocks + 1) / 2)).Select(_ => (byte)random.Next(256)).ToArray() : [];
        float[] floatZp = zeroPoints == "float" ? Enumerable.Range(0, n * blocks).Select(_ => random.NextSingle() * 15).ToArray() : [];
        var b = PackedInt4Matrix.FromMatMulNBits(q, k, n, blockSize, scales, packedZp, floatZp);
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 4 - 2).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();

        var c = new float[m * n];
        Int4Gemm.Multiply(a, m, b, c, bias);
        var twin = new float[m * n];
        Int4Gemm.MultiplyScalar(a, m, b, twin);
        // Every vector kernel this CPU has, not only the widest.
        var kernels = new List<Int4Kernel>();
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported) kernels.Add(Int4Kernel.Avx2);
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) kernels.Add(Int4Kernel.Avx512);
        var outputs = kernels.Select(kernel =>
        {
            var output = new float[m * n];
            Int4Gemm.MultiplyWith(kernel, a, m, b, output);
            return output;
        }).ToList();

        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double exact = bias[j], magnitude = Math.Abs(bias[j]);
                for (int t = 0; t < k; t++)
                {
                    // The weight from the MatMulNBits definition, independently of the kernel's formula.
                    int block = t / blockSize;
                    byte pair = q[(j * blocks + block) * (blockSize / 2) + (t % blockSize) / 2];
                    int nibble = (t & 1) == 0 ? pair & 0x0F : pair >> 4;
                    double zp = zeroPoints switch
                    {
                        "packed" => (block & 1) == 0 ? packedZp[j * ((blocks + 1) / 2) + block / 2] & 0x0F : packedZp[j * ((blocks + 1) / 2) + block / 2] >> 4,
                        "float" => floatZp[j * blocks + block],
                        _ => 8,
                    };
                    double w = (nibble - zp) * scales[j * blocks + block];
                    exact += w * a[i * k + t];
                    magnitude += Math.Abs((nibble + Math.Abs(zp)) * scales[j * blocks + block] * a[i * k + t]);
                }
                double tolerance = magnitude * 4e-7 * Math.Sqrt(k) + 1e-5;
                Assert.True(Math.Abs(c[i * n + j] - exact) <= tolerance, $"({i},{j}) {c[i * n + j]} vs {exact} (tolerance {tolerance})");
                Assert.True(Math.Abs(twin[i * n + j] + bias[j] - exact) <= tolerance, $"twin ({i},{j}) {twin[i * n + j] + bias[j]} vs {exact}");
                for (int v = 0; v < kernels.Count; v++)
                    Assert.True(Math.Abs(outputs[v][i * n + j] + bias[j] - exact) <= tolerance, $"{kernels[v]} ({i},{j}) {outputs[v][i * n + j] + bias[j]} vs {exact}");
            }
        }
    }

    [Fact]
    public void Results_are_identical_for_every_thread_count()
    {
        var random = new Random(8);
        int m = 3, k = 512, n = 200, bs = 32;
        var q = new byte[n * k / 2];
        random.NextBytes(q);
        var b = PackedInt4Matrix.FromMatMulNBits(q, k, n, bs, Enumerable.Range(0, n * k / bs).Select(_ => random.NextSingle()).ToArray());
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var one = new float[m * n];
        Int4Gemm.Multiply(a, m, b, one, default, 1);
        foreach (int threads in new[] { 2, 4, 7 })
        {
            var many = new float[m * n];
            Int4Gemm.Multiply(a, m, b, many, default, threads);
            Assert.Equal(one, many);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8_activation_variant_matches_float64_of_block_quantized_activations(int m, int k, int n, int blockSize, string zeroPoints)
    {
        var random = new Random(m * 131 + k * 17 + n + blockSize);
        int blocks = (k + blockSize - 1) / blockSize;
        var q = new byte[n * blocks * blockSize / 2];
        random.NextBytes(q);
        float[] scales = Enumerable.Range(0, n * blocks).Select(_ => 0.001f + random.NextSingle() * 0.05f).ToArray();
        byte[] packedZp = zeroPoints == "packed" ? Enumerable.Range(0, n * ((blocks + 1) / 2)).Select(_ => (byte)random.Next(256)).ToArray() : [];
        float[] floatZp = zeroPoints == "float" ? Enumerable.Range(0, n * blocks).Select(_ => random.NextSingle() * 15).ToArray() : [];
        var b = PackedInt4Matrix.FromMatMulNBits(q, k, n, blockSize, scales, packedZp, floatZp);
        float[] a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 4 - 2).ToArray();

        var c = new float[m * n];
        Int4GemmInt8Activations.Multiply(a, m, b, c);
        var twin = new float[m * n];
        Int4GemmInt8Activations.MultiplyScalar(a, m, b, twin);

        for (int i = 0; i < m; i++)
        {
            // A quantized by the rule the variant documents: per block, scale max|a|/127, round half to even.
            var aq = new double[k];
            for (int block = 0; block < blocks; block++)
            {
                int start = block * blockSize, end = Math.Min(k, start + blockSize);
                double max = 0;
                for (int t = start; t < end; t++) max = Math.Max(max, Math.Abs(a[i * k + t]));
                float scale = max > 0 ? (float)max / 127f : 1f;
                for (int t = start; t < end; t++) aq[t] = Math.Clamp(Math.Round(a[i * k + t] / scale, MidpointRounding.ToEven), -127, 127) * scale;
            }
            for (int j = 0; j < n; j++)
            {
                double exact = 0, magnitude = 0;
                for (int t = 0; t < k; t++)
                {
                    double w = b.Dequantize(j, t);
                    exact += w * aq[t];
                    magnitude += Math.Abs(w * aq[t]);
                }
                double tolerance = magnitude * 1e-6 + 1e-5;
                Assert.True(Math.Abs(c[i * n + j] - exact) <= tolerance, $"({i},{j}) {c[i * n + j]} vs {exact}");
                Assert.True(Math.Abs(twin[i * n + j] - exact) <= tolerance, $"twin ({i},{j}) {twin[i * n + j]} vs {exact}");
            }
        }
    }
}
