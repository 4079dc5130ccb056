using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>
/// Every graph of utensor_cgen's op tests (../shared/tf-graphs/utensor-op-tests), float and eightbit, run on our runtime and
/// compared with the output TensorFlow computed from the float graph (the IDX golden file).
/// </summary>
public sealed class UtensorOpTests(ITestOutputHelper output)
{
    private const string Folder = "tf-graphs/utensor-op-tests";

    public static TheoryData<string> Graphs()
    {
        var data = new TheoryData<string>();
        if (!SharedData.Exists(Folder)) return data;
        foreach (string file in Directory.GetFiles(Path.Combine(SharedData.Root!, Folder), "*.pb", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(Path.Combine(SharedData.Root!, Folder), file).Replace('\\', '/'));
        return data;
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void GraphMatchesTensorFlowsOutput(string graph)
    {
        string path = SharedData.Require(Path.Combine(Folder, graph));
        string folder = Path.GetDirectoryName(path)!;
        var model = GraphDefModel.Load(path);
        using var session = ModelSession.Create(model, new SessionOptions { Threads = 1 });
        var inputs = new Dictionary<string, Tensor>();
        foreach (var input in session.Inputs)
        {
            string file = Path.Combine(folder, $"input_{input.Name}.idx");
            if (input.Name.Contains("keep_prob", StringComparison.Ordinal)) inputs[input.Name] = Tensor.Create([1f]);
            else if (File.Exists(file)) inputs[input.Name] = IdxFile.Read(file);
            else inputs[input.Name] = Tensor.Create([0.5f, -1.25f, 3f], 3); // the placeholder test adds a constant: checked below
        }
        var results = session.Run(inputs);
        Assert.Single(results);
        var actual = results.Values.Single();
        string? golden = Directory.GetFiles(folder, "output_*.idx").Concat(Directory.GetFiles(folder, "*_output.idx")).FirstOrDefault();
        bool quantized = Path.GetFileName(graph).StartsWith("test_quant_", StringComparison.Ordinal)
            && model.Proto.Node.Any(n => n.Op.StartsWith("Quantize", StringComparison.Ordinal) || n.Op == "Dequantize");
        if (Directory.GetFiles(folder, "*_eightbit_*.idx").Length > 0)
        {
            // quantized_add/: the stored output is the eightbit graph's (x + y is 2, 3, 4, 5; it holds 2.0015 ... 5.0038).
            var x = IdxFile.Read(Path.Combine(folder, "x_0.idx")).ToArray<float>();
            var y = IdxFile.Read(Path.Combine(folder, "y_0.idx")).ToArray<float>();
            var sums = actual.ToArray<float>();
            if (!quantized)
            {
                Assert.Equal(x.Zip(y, (a, b) => (double)a + b), sums.Select(v => (double)v));
                return;
            }
            // Against TensorFlow's own eightbit result: within one step of the 8-bit output range [0, max].
            var eightbit = IdxFile.Read(golden!).ToArray<float>();
            double step = eightbit.Max() / 255.0;
            double error = eightbit.Zip(sums, (w, g) => Math.Abs((double)w - g)).Max();
            output.WriteLine($"{graph}: max abs error to TensorFlow's eightbit output {error:G4}, one step {step:G4}");
            Assert.True(error <= step, $"{graph}: {error:G4} > one step {step:G4}");
            return;
        }
        if (golden is null && inputs.Count == 0)
        {
            // const/: the output is the constant itself.
            Assert.Equal(IdxFile.Read(Path.Combine(folder, "x_0.idx")).ToArray<float>(), actual.ToArray<float>());
            return;
        }
        if (golden is null)
        {
            // placeholder/: y = x + one, with no stored output.
            var one = IdxFile.Read(Path.Combine(folder, "one_0.idx")).ToArray<float>()[0];
            var fed = inputs.Values.Single().ToArray<float>();
            Assert.Equal(fed.Select(v => (double)(v + one)), actual.ToArray<float>().Select(v => (double)v));
            return;
        }
        var expected = IdxFile.Read(golden);
        Assert.Equal(expected.Length, actual.Length);
        if (expected.ElementType != TensorElementType.Float32)
        {
            Assert.Equal(expected.ToArray<int>().Select(v => (long)v), ToLongs(actual));
            return;
        }
        var want = expected.ToArray<float>();
        var got = actual.ToArray<float>();
        double scale = want.Max(v => Math.Abs((double)v));
        double worst = want.Zip(got, (w, g) => Math.Abs((double)w - g)).Max();
        output.WriteLine($"{graph}: max abs error {worst:G4} (largest |value| {scale:G4})");
        double tolerance = quantized ? QuantizedTolerance(want) : 1e-5 * Math.Max(scale, 1e-30);
        Assert.True(worst <= tolerance, $"{graph}: max abs error {worst:G4} > {tolerance:G4}");
    }

    /// <summary>
    /// The eightbit graph is compared with the float result: its error is the 8-bit rounding of the inputs and weights carried
    /// through the op, then of the output. Two steps of the output's own range bound it for these single-op graphs.
    /// </summary>
    private static double QuantizedTolerance(float[] expected)
    {
        double range = Math.Max(expected.Max(), 0) - Math.Min(expected.Min(), 0);
        return 2 * range / 255;
    }

    private static IEnumerable<long> ToLongs(Tensor t) => t.ElementType switch
    {
        TensorElementType.Int64 => t.ToArray<long>(),
        TensorElementType.Int32 => t.ToArray<int>().Select(v => (long)v),
        _ => throw new InvalidOperationException(t.ToString()),
    };
}
