using Quantize.Kernels.Gemm;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Tests.Gemm;

/// <summary>The int8 GEMM equals the 64-bit scalar reference exactly, for awkward shapes, zero points and worst-case operands.</summary>
public class Int8GemmTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 1, 7, 1 }, { 1, 33, 17 }, { 5, 3, 16 }, { 6, 64, 16 }, { 7, 31, 33 }, { 13, 129, 40 },
        { 1, 2049, 31 }, { 97, 1030, 18 }, { 200, 96, 70 }, { 3, 2100, 5 },
    };

    public static TheoryData<int, int, bool, bool> ZeroPointCases() => new()
    {
        { 0, 0, false, true }, { 127, 0, false, true }, { 128, 0, false, true }, { 255, 0, false, true },
        { 0, -128, true, true }, { -128, 127, true, true }, { 128, 255, false, false }, { 0, 128, false, false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Random_shapes_equal_the_reference_on_every_path(int m, int k, int n)
    {
        var random = new Random(m * 1000003 + k * 1009 + n);
        foreach (var (signedA, signedB) in new[] { (false, true), (false, false), (true, true), (true, false) })
        {
            byte[] a = RandomBytes(random, m * k);
            byte[] b = RandomBytes(random, k * n);
            int zpA = random.Next(signedA ? -128 : 0, signedA ? 128 : 256);
            int[] zpB = random.Next(2) == 0 ? [random.Next(signedB ? -128 : 0, signedB ? 128 : 256)]
                : Enumerable.Range(0, n).Select(_ => random.Next(signedB ? -128 : 0, signedB ? 128 : 256)).ToArray();
            Check(a, signedA, m, k, zpA, b, signedB, n, zpB);
        }
    }

    [Theory]
    [MemberData(nameof(ZeroPointCases))]
    public void Zero_points_at_the_edges_and_saturating_operands_stay_exact(int zpA, int zpB, bool signedA, bool signedB)
    {
        // The operands vpmaddubsw would saturate on (255 x -128 twice), and their mirror images.
        foreach (var (aValue, bValue) in new[] { (255, -128), (255, 127), (0, -128), (128, -128), (255, 255) })
        {
            int m = 7, k = 67, n = 19;
            byte av = signedA ? (byte)(sbyte)Math.Clamp(aValue - 128, -128, 127) : (byte)aValue;
            byte bv = signedB ? (byte)(sbyte)Math.Clamp(bValue, -128, 127) : (byte)Math.Clamp(bValue, 0, 255);
            Check(Enumerable.Repeat(av, m * k).ToArray(), signedA, m, k, zpA, Enumerable.Repeat(bv, k * n).ToArray(), signedB, n, [zpB]);
        }
    }

    [Theory]
    [InlineData(150, 300, 260)] // many panels: split by columns
    [InlineData(400, 100, 20)]  // two panels, several row blocks: split by rows
    public void Results_are_identical_for_every_thread_count(int m, int k, int n)
    {
        var random = new Random(3);
        byte[] a = RandomBytes(random, m * k);
        var b = PackedInt8Matrix.Pack(RandomBytes(random, k * n).Select(v => (sbyte)v).ToArray(), k, n, [3]);
        var one = new int[m * n];
        Int8Gemm.Multiply(a, m, 100, b, one, degreeOfParallelism: 1);
        foreach (int threads in new[] { 2, 3, 4, 8 })
        {
            var many = new int[m * n];
            Int8Gemm.Multiply(a, m, 100, b, many, threads);
            Assert.Equal(one, many);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_dynamic_product_is_identical_for_every_thread_count(bool sevenBitWeights)
    {
        // Large enough that A's quantization, the zero-point stage and the float output stage all split over threads.
        int m = 128, k = 384, n = 200;
        var random = new Random(11);
        float[] a = Enumerable.Range(0, m * k).Select(_ => (random.NextSingle() - 0.3f) * 4).ToArray();
        sbyte[] w = Enumerable.Range(0, k * n).Select(_ => (sbyte)random.Next(sevenBitWeights ? -63 : -127, sevenBitWeights ? 64 : 128)).ToArray();
        var b = PackedInt8Matrix.Pack(w, k, n, [0]);
        float[] scales = Enumerable.Range(0, n).Select(_ => random.NextSingle() * 0.01f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        var one = new float[m * n];
        Int8Gemm.MultiplyDynamic(a, m, b, scales, bias, one, 1);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = new float[m * n];
            Int8Gemm.MultiplyDynamic(a, m, b, scales, bias, many, threads);
            Assert.Equal(one, many);
        }
    }

    [Theory]
    [InlineData(63, 0)]    // 7-bit symmetric weights: quads, no zero point
    [InlineData(100, 128)] // uint8 weights around their zero point: quads with zB
    [InlineData(255, 3)]   // full-range uint8: 16-bit pairs with zB
    public void The_one_pass_float_stage_equals_the_two_passes(int spread, int zeroPoint)
    {
        int m = 37, k = 300, n = 45;
        var random = new Random(spread + zeroPoint);
        byte[] a = RandomBytes(random, m * k);
        byte[] w = Enumerable.Range(0, k * n).Select(_ => (byte)Math.Clamp(zeroPoint + random.Next(-spread / 2, spread / 2 + 1), 0, 255)).ToArray();
        var b = PackedInt8Matrix.Pack(w, k, n, [zeroPoint]);
        float[] scales = Enumerable.Range(0, n).Select(_ => random.NextSingle() * 0.01f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        var exact = new int[m * n];
        Int8Gemm.Multiply(a, m, 17, b, exact);
        var expected = new float[m * n];
        Int8OutputStage.ToFloat(exact, m, n, 0.02f, scales, bias, expected);
        foreach (int threads in new[] { 1, 2 })
        {
            var actual = new float[m * n];
            Int8Gemm.MultiplyToFloat(a, m, 17, 0.02f, b, scales, bias, actual, threads);
            Assert.Equal(expected, actual);
        }
        // Full-range uint8 would saturate vpmaddubsw's pairs; VNNI and ARM's dot product take it whole, as quads.
        Assert.Equal(zeroPoint == 3 && PackedInt8Matrix.QuadKernelsSaturate ? Int8PackFormat.Pairs16 : Int8PackFormat.Quads, b.Format);
    }

    [Fact]
    public void Float_output_stage_matches_float64_of_the_exact_product()
    {
        var random = new Random(9);
        int m = 9, k = 50, n = 21;
        byte[] a = RandomBytes(random, m * k);
        sbyte[] b = RandomBytes(random, k * n).Select(v => (sbyte)v).ToArray();
        int zpA = 131;
        float scaleA = 0.02f;
        float[] scaleB = Enumerable.Range(0, n).Select(_ => 0.001f + random.NextSingle() * 0.01f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var packed = PackedInt8Matrix.Pack(b, k, n, [0]);
        var c = new float[m * n];
        Int8Gemm.MultiplyToFloat(a, m, zpA, scaleA, packed, scaleB, bias, c);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                long exact = 0;
                for (int t = 0; t < k; t++) exact += (long)(a[i * k + t] - zpA) * b[t * n + j];
                double expected = exact * (double)scaleA * scaleB[j] + bias[j];
                Assert.Equal(expected, c[i * n + j], Math.Abs(expected) * 1e-6 + 1e-6);
            }
        }
    }

    [Fact]
    public void Requantize_output_stage_matches_float64_rounding()
    {
        var random = new Random(21);
        int m = 8, k = 40, n = 12;
        byte[] a = RandomBytes(random, m * k);
        byte[] b = RandomBytes(random, k * n);
        var packed = PackedInt8Matrix.Pack(b, k, n, [128]);
        double real = 0.0005;
        var multiplier = FixedPointMultiplier.FromReal(real);
        var c = new byte[m * n];
        Int8Gemm.MultiplyRequantize(a, m, 120, packed, [multiplier], [], 128, new QuantizedRange(0, 255), c);
        var exact = new int[m * n];
        Int8Gemm.MultiplyReference(a, false, m, k, 120, b, false, n, [128], exact);
        for (int i = 0; i < c.Length; i++)
        {
            double expected = Math.Clamp(128 + exact[i] * real, 0, 255);
            Assert.True(Math.Abs(c[i] - expected) <= 0.5 + 1e-6, $"{i}: {c[i]} vs {expected}");
        }
    }

    private static void Check(byte[] a, bool signedA, int m, int k, int zpA, byte[] b, bool signedB, int n, int[] zpB)
    {
        var expected = new int[m * n];
        Int8Gemm.MultiplyReference(a, signedA, m, k, zpA, b, signedB, n, zpB, expected);
        // Every layout, on the vector kernel this CPU runs and on the scalar twin: Pairs16; quads made safe
        // for vpmaddubsw (with sparse corrections); quads stored whole, as for VNNI.
        foreach (var (format, saturating) in new[] { (Int8PackFormat.Pairs16, true), (Int8PackFormat.Quads, true), (Int8PackFormat.Quads, false) })
        {
            var packed = PackedInt8Matrix.Pack(b, k, n, zpB, transposed: false, signedB, format, saturating);
            Assert.Equal(format, packed.Format);
            // The CPU's own kernel, the scalar twin of the x86 (and ARM Pairs16) kernels, and for quads the
            // scalar twin of the ARM dot-product kernel, which multiplies A - 128 as int8.
            // On a VNNI CPU, Native is the VNNI kernel, and Avx2 forces the AVX2 one.
            var kernels = format == Int8PackFormat.Quads
                ? new[] { Int8KernelChoice.Native, Int8KernelChoice.Avx2, Int8KernelChoice.ScalarTwin, Int8KernelChoice.ScalarTwinOfArmDot }
                : new[] { Int8KernelChoice.Native, Int8KernelChoice.Avx2, Int8KernelChoice.ScalarTwin };
            foreach (var kernel in kernels)
            {
                var actual = new int[m * n];
                Int8Gemm.MultiplyInt32(a, m, zpA, signedA, packed, actual, degreeOfParallelism: 1, kernel);
                Assert.True(expected.AsSpan().SequenceEqual(actual),
                    $"m={m} k={k} n={n} signedA={signedA} signedB={signedB} zpA={zpA} {format} saturating={saturating} {kernel} corrections={packed.CorrectionCount}");
            }
        }

        // The transposed packing (N x K weights) gives the same product.
        var transposed = new byte[n * k];
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < n; j++) transposed[j * k + i] = b[i * n + j];
        }
        var packedT = signedB ? PackedInt8Matrix.Pack(transposed.Select(v => (sbyte)v).ToArray(), k, n, zpB, transposed: true)
            : PackedInt8Matrix.Pack(transposed, k, n, zpB, transposed: true);
        var fromTransposed = new int[m * n];
        Int8Gemm.MultiplyInt32(a, m, zpA, signedA, packedT, fromTransposed, 1);
        Assert.Equal(expected, fromTransposed);
    }

    internal static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}

/// <summary>How the packer chooses between the quad and the 16-bit-pair layouts.</summary>
public class Int8PackFormatTests
{
    [Fact]
    public void Seven_bit_weights_take_quads_without_corrections()
    {
        var random = new Random(1);
        sbyte[] b = Enumerable.Range(0, 64 * 40).Select(_ => (sbyte)random.Next(-64, 64)).ToArray();
        var packed = PackedInt8Matrix.Pack(b, 64, 40, [0]);
        Assert.Equal(Int8PackFormat.Quads, packed.Format);
        Assert.Equal(0, packed.CorrectionCount);
    }

    [Theory]
    [InlineData(false, 153)]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(true, -20)]
    public void Full_range_weights_packed_for_seven_bit_activations_take_quads_and_stay_exact(bool signed, int zeroPoint)
    {
        // quantize_weights-style weights that fill 0..255 (or -128..127): with A in 0..127 no pair can saturate.
        var random = new Random(11);
        int m = 7, k = 131, n = 37;
        byte[] b = new byte[k * n];
        random.NextBytes(b);
        var packed = PackedInt8Matrix.PackForSevenBitActivations(b, k, n, [zeroPoint], signed);
        Assert.Equal(Int8PackFormat.Quads, packed.Format);
        Assert.True(packed.ForSevenBitActivations);
        Assert.Equal(0, packed.CorrectionCount);
        byte[] a = Enumerable.Range(0, m * k).Select(_ => (byte)random.Next(128)).ToArray();
        var expected = new int[m * n];
        Int8Gemm.MultiplyReference(a, false, m, k, 5, b, signed, n, [zeroPoint], expected);
        foreach (var kernel in new[] { Int8KernelChoice.Native, Int8KernelChoice.Avx2, Int8KernelChoice.ScalarTwin, Int8KernelChoice.ScalarTwinOfArmDot })
        {
            var actual = new int[m * n];
            Int8Gemm.MultiplyInt32(a, m, 5, false, packed, actual, degreeOfParallelism: 1, kernel);
            Assert.Equal(expected, actual);
        }

        // MultiplyDynamic quantizes A into 0..127 for such weights: within half a 7-bit step of the float64 product.
        float[] x = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 3 - 1).ToArray();
        float[] scales = Enumerable.Range(0, n).Select(_ => 0.01f + random.NextSingle() * 0.01f).ToArray();
        var c = new float[m * n];
        Int8Gemm.MultiplyDynamic(x, m, packed, scales, [], c);
        double step = (Math.Max(x.Max(), 0) - Math.Min(x.Min(), 0)) / 127;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double exact = 0, bound = 0;
                for (int p = 0; p < k; p++)
                {
                    int q = signed ? (sbyte)b[p * n + j] : b[p * n + j];
                    double w = (q - zeroPoint) * (double)scales[j];
                    exact += x[i * k + p] * w;
                    bound += Math.Abs(w) * step / 2;
                }
                Assert.True(Math.Abs(c[i * n + j] - exact) <= bound * 1.01 + 1e-4, $"[{i},{j}] {c[i * n + j]} vs {exact} (bound {bound})");
            }
        }
    }

    [Fact]
    public void Asymmetric_uint8_weights_around_their_zero_point_take_quads_and_stay_exact()
    {
        // TensorFlow's quantize_weights: quint8, range [min, max] holding 0, so the zero point sits off-centre (153 here)
        // and B - 128 is lopsided. Stored as B - zB, bell-shaped weights are centred and need almost no corrections.
        var random = new Random(7);
        int k = 256, n = 64, zeroPoint = 153;
        byte[] b = Enumerable.Range(0, k * n).Select(_ =>
        {
            double normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            return (byte)Math.Clamp(Math.Round(zeroPoint + 25 * normal), 0, 255);
        }).ToArray();
        var packed = PackedInt8Matrix.Pack(b, k, n, [zeroPoint]);
        Assert.Equal(Int8PackFormat.Quads, packed.Format);
        Assert.True(packed.CorrectionCount <= PackedInt8Matrix.MaxCorrectionFraction * k * n, $"{packed.CorrectionCount} corrections");

        byte[] a = Enumerable.Range(0, 5 * k).Select(_ => (byte)random.Next(256)).ToArray();
        var expected = new int[5 * n];
        Int8Gemm.MultiplyReference(a, false, 5, k, 3, b, false, n, [zeroPoint], expected);
        foreach (var kernel in new[] { Int8KernelChoice.Native, Int8KernelChoice.Avx2, Int8KernelChoice.ScalarTwin, Int8KernelChoice.ScalarTwinOfArmDot })
        {
            var actual = new int[5 * n];
            Int8Gemm.MultiplyInt32(a, 5, 3, false, packed, actual, degreeOfParallelism: 1, kernel);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Full_range_weights_that_would_saturate_take_pairs_unless_forced()
    {
        // All 127: every adjacent pair sums to 254 > 128, which vpmaddubsw would saturate with A = 255.
        sbyte[] b = Enumerable.Repeat((sbyte)127, 64 * 40).ToArray();
        var packed = PackedInt8Matrix.Pack(b, 64, 40, [0]);
        Assert.Equal(PackedInt8Matrix.QuadKernelsSaturate ? Int8PackFormat.Pairs16 : Int8PackFormat.Quads, packed.Format);
        var forced = PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan()), 64, 40, [0], false, true, Int8PackFormat.Quads, saturatingQuads: true);
        Assert.Equal(64 * 40 / 2, forced.CorrectionCount); // each pair keeps 1 + 127 and moves 126 out
    }

    [Theory]
    [InlineData(64, 0, 64, false)]
    [InlineData(64, 0, 64, true)]
    [InlineData(1536, 1024, 512, true)]
    [InlineData(100, 4, 96, false)]
    [InlineData(44, 8, 36, true)]
    [InlineData(2100, 0, 1024, false)]
    public unsafe void The_vector_quad_packer_equals_its_scalar_twin(int depth, int k0, int kc, bool signed)
    {
        var random = new Random(depth + k0 + kc);
        byte[] a = Int8GemmTests.RandomBytes(random, 9 * depth);
        int length = Int8QuadPacking.RowBlockLength(kc);
        var fast = new int[length];
        var twin = new int[length];
        fixed (byte* pa = a)
        fixed (int* pf = fast, pt = twin)
        {
            var view = new GemmA(pa, 9, depth, signed: signed);
            Int8QuadPacking.PackA(view, 2, 6, k0, kc, pf);
            Int8QuadPacking.PackAScalar(view, 2, 6, k0, kc, pt);
        }
        Assert.Equal(twin, fast);
    }
}
