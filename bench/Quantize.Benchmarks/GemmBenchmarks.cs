using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Gemm;

namespace Quantize.Benchmarks;

/// <summary>
/// The kernels issue's GEMM shapes, one and two threads: our fp32 (the baseline), our int8 (u8 x s8,
/// int32 out, as MatMulInteger), our fused dynamic int8 (float in, float out), and ONNX Runtime's
/// MatMul and MatMulInteger, in the same run. 4-bit weights are measured where they matter, on the
/// single-row product (<see cref="GemvBenchmarks"/>).
/// </summary>
public class GemmBenchmarks
{
    public static IEnumerable<GemmShape> Shapes() => [new(128, 384, 1536), new(128, 1536, 384), new(512, 768, 3072)];

    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = new(1, 1, 1);

    [Params(1, 2)]
    public int Threads { get; set; }

    private GemmOperands _operands = null!;

    [GlobalSetup]
    public void Setup() => _operands = new GemmOperands(Shape, Threads, withInt4: false);

    [GlobalCleanup]
    public void Cleanup() => _operands.Dispose();

    [Benchmark(Baseline = true, Description = "fp32 (ours)")]
    public void Fp32() => _operands.Fp32();

    [Benchmark(Description = "int8 u8s8->s32 (ours)")]
    public void Int8() => _operands.Int8();

    [Benchmark(Description = "int8 dynamic f32->f32 (ours)")]
    public void Int8Dynamic() => _operands.Int8Dynamic();

    [Benchmark(Description = "int8 dynamic, 7-bit weights (ours)")]
    public void Int8DynamicSevenBit() => _operands.Int8DynamicSevenBit();

    [Benchmark(Description = "fp32 MatMul (ORT)")]
    public void OrtFp32() => _operands.OrtFp32();

    [Benchmark(Description = "int8 MatMulInteger u8s8 (ORT)")]
    public void OrtInt8() => _operands.OrtInt8();
}

/// <summary>The memory-bound single-row product 1 x 4096 x 4096: weights larger than L3.</summary>
public class GemvBenchmarks
{
    public static IEnumerable<GemmShape> Shapes() => [new(1, 4096, 4096)];

    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = new(1, 1, 1);

    [Params(1, 2)]
    public int Threads { get; set; }

    private GemmOperands _operands = null!;

    [GlobalSetup]
    public void Setup() => _operands = new GemmOperands(Shape, Threads, withInt4: true);

    [GlobalCleanup]
    public void Cleanup() => _operands.Dispose();

    [Benchmark(Baseline = true, Description = "fp32 (ours)")]
    public void Fp32() => _operands.Fp32();

    [Benchmark(Description = "int8 u8s8->s32 (ours)")]
    public void Int8() => _operands.Int8();

    [Benchmark(Description = "int8 dynamic, 7-bit weights (ours)")]
    public void Int8DynamicSevenBit() => _operands.Int8DynamicSevenBit();

    [Benchmark(Description = "int4 block32 f32 (ours)")]
    public void Int4() => _operands.Int4();

    [Benchmark(Description = "int4 block32 int8-act (ours)")]
    public void Int4Int8Activations() => _operands.Int4Int8Activations();

    [Benchmark(Description = "fp32 MatMul (ORT)")]
    public void OrtFp32() => _operands.OrtFp32();

    [Benchmark(Description = "int8 MatMulInteger u8s8 (ORT)")]
    public void OrtInt8() => _operands.OrtInt8();
}

/// <summary>Random operands for one shape, packed for our kernels and bound for ONNX Runtime.</summary>
internal sealed class GemmOperands : IDisposable
{
    private readonly GemmShape _shape;
    private readonly int _threads;
    private readonly float[] _a;
    private readonly byte[] _a8;
    private readonly float[] _c;
    private readonly int[] _c32;
    private readonly float[] _scaleB;
    private readonly PackedFloatMatrix _b;
    private readonly PackedInt8Matrix _b8;
    private readonly PackedInt8Matrix _b7;
    private readonly PackedInt4Matrix? _b4;
    private readonly InferenceSession _ortFp32;
    private readonly InferenceSession _ortInt8;
    private readonly OrtValue _ortA, _ortA8, _ortC, _ortC32;
    private readonly RunOptions _runOptions = new();

    public GemmOperands(GemmShape shape, int threads, bool withInt4)
    {
        _shape = shape;
        _threads = threads;
        var random = new Random(42);
        int m = shape.M, k = shape.K, n = shape.N;
        _a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        _a8 = new byte[m * k];
        random.NextBytes(_a8);
        // Weights as a quantizer makes them: bell-shaped floats, int8 symmetric per column (-127..127).
        float[] b = Enumerable.Range(0, k * n).Select(_ => Gaussian(random)).ToArray();
        sbyte[] b8 = QuantizePerColumn(b, k, n, 127);
        _b = PackedFloatMatrix.Pack(b, k, n);
        _b8 = PackedInt8Matrix.Pack(b8, k, n, [0]);
        // The same weights as our quantizer's dynamic mode writes them by default (7 bits, ORT's reduce_range): no pair
        // of them can saturate vpmaddubsw, so they take the byte-quad layout.
        _b7 = PackedInt8Matrix.Pack(QuantizePerColumn(b, k, n, 63), k, n, [0]);
        _scaleB = Enumerable.Range(0, n).Select(_ => 0.01f).ToArray();
        if (withInt4)
        {
            const int block = 32;
            var q = new byte[n * k / 2];
            random.NextBytes(q);
            _b4 = PackedInt4Matrix.FromMatMulNBits(q, k, n, block, Enumerable.Range(0, n * k / block).Select(_ => 0.01f).ToArray());
        }
        _c = new float[m * n];
        _c32 = new int[m * n];

        _ortFp32 = OrtModels.Session(OrtModels.MatMul(m, k, n, b), threads);
        _ortInt8 = OrtModels.Session(OrtModels.MatMulInteger(m, k, n, b8, 128), threads);
        _ortA = OrtValue.CreateTensorValueFromMemory(_a, [m, k]);
        _ortA8 = OrtValue.CreateTensorValueFromMemory(_a8, [m, k]);
        _ortC = OrtValue.CreateTensorValueFromMemory(_c, [m, n]);
        _ortC32 = OrtValue.CreateTensorValueFromMemory(_c32, [m, n]);
    }

    public void Fp32() => FloatGemm.Multiply(_a, _shape.M, _b, _c, default, _threads);

    /// <summary>The int8 layout the packer chose for these weights.</summary>
    public string Int8Layout => $"{_b8.Format}, {_b8.CorrectionCount} corrections";

    private static float Gaussian(Random random) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));

    private static sbyte[] QuantizePerColumn(float[] b, int k, int n, int limit)
    {
        var q = new sbyte[k * n];
        for (int j = 0; j < n; j++)
        {
            float max = 0;
            for (int i = 0; i < k; i++) max = Math.Max(max, Math.Abs(b[i * n + j]));
            for (int i = 0; i < k; i++) q[i * n + j] = (sbyte)Math.Round(b[i * n + j] / max * limit);
        }
        return q;
    }

    public void Int8() => Int8Gemm.Multiply(_a8, _shape.M, 128, _b8, _c32, _threads);

    public void Int8Dynamic() => Int8Gemm.MultiplyDynamic(_a, _shape.M, _b8, _scaleB, default, _c, _threads);

    public void Int8DynamicSevenBit() => Int8Gemm.MultiplyDynamic(_a, _shape.M, _b7, _scaleB, default, _c, _threads);

    public void Int4() => Int4Gemm.Multiply(_a, _shape.M, _b4!, _c, default, _threads);

    public void Int4Int8Activations() => Int4GemmInt8Activations.Multiply(_a, _shape.M, _b4!, _c, default, _threads);

    public void OrtFp32() => _ortFp32.Run(_runOptions, ["A"], [_ortA], ["Y"], [_ortC]);

    public void OrtInt8() => _ortInt8.Run(_runOptions, ["A"], [_ortA8], ["Y"], [_ortC32]);

    public void Dispose()
    {
        _ortFp32.Dispose();
        _ortInt8.Dispose();
        _ortA.Dispose();
        _ortA8.Dispose();
        _ortC.Dispose();
        _ortC32.Dispose();
        _runOptions.Dispose();
    }
}
