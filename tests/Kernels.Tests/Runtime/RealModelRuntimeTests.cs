using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Tests;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>ResNet18 and all-MiniLM-L6-v2 on our runtime give ONNX Runtime's outputs (relative error at most 1e-4).</summary>
public class RealModelRuntimeTests
{
    [Fact]
    public void ResNet18_matches_onnx_runtime_on_real_and_random_images()
    {
        string path = RealModels.ResNet18Path;
        using var ours = ModelSession.Load(path);
        using var ort = new InferenceSession(path);
        var inputs = new List<Tensor>();
        foreach (string image in Directory.GetDirectories(SharedData.Require("calibration/resnet18")).Order(StringComparer.Ordinal).Take(2))
            inputs.Add(ReadTensor(Path.Combine(image, "Input247.pb")));
        var random = new Random(3);
        inputs.Add(Tensor.Create(Enumerable.Range(0, 3 * 224 * 224).Select(_ => random.NextSingle() * 255 - 120).ToArray(), 1, 3, 224, 224));
        foreach (var input in inputs)
        {
            var mine = ours.Run(new Dictionary<string, Tensor> { ["Input247"] = input });
            var expected = RunOrt(ort, ("Input247", input));
            AssertClose(expected["Pooling395_Output_0"], mine["Pooling395_Output_0"].ToArray<float>(), 1e-4);
        }
    }

    [Fact]
    public void MiniLM_matches_onnx_runtime_alone_and_in_a_padded_batch()
    {
        byte[] model = MiniLMBytes();
        using var ours = ModelSession.Load(model, "all-MiniLM-L6-v2.onnx");
        using var ort = new InferenceSession(model);
        foreach (string folder in new[] { "calibration/minilm/s000", "calibration/minilm/s001", "calibration/minilm-batch8" })
        {
            var feeds = MiniLMInputs(SharedData.Require(folder));
            var mine = ours.Run(feeds);
            var expected = RunOrt(ort, feeds.Select(f => (f.Key, f.Value)).ToArray());
            foreach (var (name, values) in expected)
                AssertClose(values, mine[name].ToArray<float>(), 1e-4);
        }
    }

    [Fact]
    public void Outputs_are_identical_on_one_and_two_threads()
    {
        // Every operator splits its work so that each value is computed the same way whatever the thread count.
        byte[] miniLM = MiniLMBytes();
        var feeds = MiniLMInputs(SharedData.Require("calibration/minilm-batch8"));
        var random = new Random(4);
        var image = new Dictionary<string, Tensor> { ["Input247"] = Tensor.Create(Enumerable.Range(0, 3 * 224 * 224).Select(_ => random.NextSingle() * 255 - 120).ToArray(), 1, 3, 224, 224) };
        foreach (var (model, inputs) in new[] { (miniLM, feeds), (File.ReadAllBytes(RealModels.ResNet18Path), image) })
        {
            using var one = ModelSession.Load(model, "model.onnx", new SessionOptions { Threads = 1 });
            using var two = ModelSession.Load(model, "model.onnx", new SessionOptions { Threads = 2 });
            var expected = one.Run(inputs);
            var actual = two.Run(inputs);
            foreach (var (name, value) in expected)
                Assert.Equal(value.ToArray<float>(), actual[name].ToArray<float>());
        }
    }

    [Fact]
    public void One_session_run_from_eight_threads_gives_the_outputs_of_a_single_run()
    {
        byte[] model = MiniLMBytes();
        using var session = ModelSession.Load(model, "all-MiniLM-L6-v2.onnx", new SessionOptions { Threads = 2 });
        var feeds = Enumerable.Range(0, 8).Select(i => MiniLMInputs(SharedData.Require($"calibration/minilm/s00{i}"))).ToArray();
        var alone = feeds.Select(f => session.Run(f).ToDictionary(o => o.Key, o => o.Value.ToArray<float>())).ToArray();
        var together = new Dictionary<string, float[]>[8];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            for (int repeat = 0; repeat < 3; repeat++)
                together[i] = session.Run(feeds[i]).ToDictionary(o => o.Key, o => o.Value.ToArray<float>());
        });
        for (int i = 0; i < 8; i++)
        {
            foreach (var (name, values) in alone[i]) Assert.Equal(values, together[i][name]);
        }
    }

    [Fact]
    public void One_resnet_session_run_from_eight_threads_gives_the_outputs_of_a_single_run()
    {
        // The convolution routes (Winograd blocks, patches, fused residuals) share packed weights across runs.
        using var session = ModelSession.Load(File.ReadAllBytes(RealModels.ResNet18Path), "ResNet18.onnx", new SessionOptions { Threads = 2 });
        var random = new Random(11);
        var feeds = Enumerable.Range(0, 8).Select(_ => new Dictionary<string, Tensor>
        {
            ["Input247"] = Tensor.Create(Enumerable.Range(0, 3 * 224 * 224).Select(_ => random.NextSingle() * 255 - 120).ToArray(), 1, 3, 224, 224),
        }).ToArray();
        var alone = feeds.Select(f => session.Run(f).ToDictionary(o => o.Key, o => o.Value.ToArray<float>())).ToArray();
        var together = new Dictionary<string, float[]>[8];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            for (int repeat = 0; repeat < 2; repeat++)
                together[i] = session.Run(feeds[i]).ToDictionary(o => o.Key, o => o.Value.ToArray<float>());
        });
        for (int i = 0; i < 8; i++)
        {
            foreach (var (name, values) in alone[i]) Assert.Equal(values, together[i][name]);
        }
    }

    internal static byte[] MiniLMBytes() => RealModels.ReadManifestResource(RealModels.MiniLMAssemblyPath, RealModels.MiniLMResource);

    internal static Dictionary<string, Tensor> MiniLMInputs(string folder) =>
        new[] { "input_ids", "attention_mask", "token_type_ids" }.ToDictionary(name => name, name => ReadTensor(Path.Combine(folder, name + ".pb")));

    internal static Tensor ReadTensor(string path)
    {
        var proto = TensorProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var model = new OnnxModel(new ModelProto { Graph = new GraphProto() });
        return TensorPool.FromStored(model.ReadTensor(proto));
    }

    internal static Dictionary<string, float[]> RunOrt(InferenceSession session, params (string Name, Tensor Value)[] inputs)
    {
        var values = inputs.Select(i => i.Value.ElementType == TensorElementType.Int64
            ? OrtValue.CreateTensorValueFromMemory(i.Value.ToArray<long>(), i.Value.Shape.ToArray().Select(d => (long)d).ToArray())
            : OrtValue.CreateTensorValueFromMemory(i.Value.ToArray<float>(), i.Value.Shape.ToArray().Select(d => (long)d).ToArray())).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            var names = session.OutputMetadata.Keys.ToArray();
            using var outputs = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, names);
            return names.Select((n, i) => (n, outputs[i].GetTensorDataAsSpan<float>().ToArray())).ToDictionary(p => p.n, p => p.Item2);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Largest error relative to the largest magnitude of the expected output.</summary>
    internal static void AssertClose(float[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs((double)v));
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= relative * scale, $"max |error| {worst} exceeds {relative} x {scale}");
    }
}
