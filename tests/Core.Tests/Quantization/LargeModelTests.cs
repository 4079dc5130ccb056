using System.Runtime.InteropServices;
using Google.Protobuf;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using static Quantize.Core.Tests.Quantization.TestGraphs;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// A model past protobuf's 2 GiB limit (two 1.1 GB MatMul weights in external data) is read, quantized and written.
/// Opt-in (QUANTIZE_LARGE_MODEL_TESTS=1): it needs about 10 GB of memory, 5 GB of disk and a minute or two.
/// </summary>
public sealed class LargeModelTests(ITestOutputHelper output) : IDisposable
{
    private const int K = 16384, N = 17000;
    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-large-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Model_over_2_GiB_is_quantized_and_runs()
    {
        Assert.SkipUnless(Environment.GetEnvironmentVariable("QUANTIZE_LARGE_MODEL_TESTS") == "1",
            "set QUANTIZE_LARGE_MODEL_TESTS=1 to run the 2.2 GB model test (10 GB of memory, 5 GB of disk)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var graph = new GraphProto { Name = "large" };
        graph.Input.Add(Floats("X", 1, K));
        graph.Output.Add(Floats("Y", 1, K));
        graph.Initializer.Add(Weight("W1", K, N, seed: 1));
        graph.Initializer.Add(Weight("W2", N, K, seed: 2));
        graph.Node.Add(Node("MatMul", "up", ["X", "W1"], ["h"]));
        graph.Node.Add(Node("MatMul", "down", ["h", "W2"], ["Y"]));
        string source = Path.Combine(_folder, "large.onnx");
        new OnnxModel(Model(graph)).Save(source); // Auto: too big for one message, so the weights go to external data
        graph = null!;
        long sourceBytes = Directory.GetFiles(_folder).Sum(f => new FileInfo(f).Length);
        Assert.True(sourceBytes > (2L << 30), $"{sourceBytes:N0} bytes");
        output.WriteLine($"written {sourceBytes:N0} bytes in {clock.Elapsed.TotalSeconds:F0} s");

        string quantizedPath = Path.Combine(_folder, "out", "large.int8.onnx");
        var summary = Quantizer.QuantizeFile(source, quantizedPath, new QuantizationOptions { Mode = QuantizationMode.Weights, Threads = 2 });
        output.WriteLine($"quantized to {summary.OutputBytes:N0} bytes at {clock.Elapsed.TotalSeconds:F0} s");
        Assert.Equal(2, summary.Result.QuantizedCount);
        Assert.InRange(summary.OutputBytes, sourceBytes / 4, sourceBytes / 4 + (1 << 20));

        // One input through both models on our runtime: int8 weights give the float model's answer to int8 error.
        var x = Tensor.Create(Random(new Random(3), K), 1, K);
        float[] reference, quantized;
        using (var session = ModelSession.Load(source, new SessionOptions { Threads = 2 }))
            reference = session.Run(new Dictionary<string, Tensor> { ["X"] = x })["Y"].ToArray<float>();
        using (var session = ModelSession.Load(quantizedPath, new SessionOptions { Threads = 2 }))
            quantized = session.Run(new Dictionary<string, Tensor> { ["X"] = x })["Y"].ToArray<float>();
        output.WriteLine($"cosine {Cosine(reference, quantized):F6} at {clock.Elapsed.TotalSeconds:F0} s");
        Assert.True(Cosine(reference, quantized) >= 0.999, $"cosine {Cosine(reference, quantized):F6}");
    }

    private static TensorProto Weight(string name, int rows, int columns, int seed)
    {
        var random = new Random(seed);
        var values = new float[(long)rows * columns];
        float scale = 1 / MathF.Sqrt(rows);
        for (long i = 0; i < values.LongLength; i++) values[i] = (random.NextSingle() * 2 - 1) * scale;
        var tensor = new TensorProto { Name = name, DataType = 1, RawData = UnsafeByteOperations.UnsafeWrap(MemoryMarshal.AsBytes(values.AsSpan()).ToArray()) };
        tensor.Dims.AddRange([rows, columns]);
        return tensor;
    }
}
