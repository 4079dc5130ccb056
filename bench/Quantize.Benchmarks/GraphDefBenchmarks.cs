using BenchmarkDotNet.Attributes;
using Quantize.Core.Quantization;
using Quantize.Core.Quantization.TensorFlow;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime;

namespace Quantize.Benchmarks;

/// <summary>
/// TensorFlow frozen graphs on our runtime, float against <c>weights</c> mode (quantize_weights' quint8 + Dequantize, which the
/// runtime runs on the int8 GEMM) and its per-channel qint8 variant: tf2onnx's fc-layers MLP at batch 1 and 64, uTensor's
/// CIFAR CNN at batch 8.
/// The graphs come from ../shared/tf-graphs beside the repository.
/// </summary>
public class GraphDefBenchmarks
{
    [Params("fc-layers-b1", "fc-layers-b64", "cifar-cnn-b8")]
    public string Graph { get; set; } = "";

    [Params("fp32", "weights", "weights-per-channel")]
    public string Precision { get; set; } = "";

    private ModelSession _session = null!;
    private Dictionary<string, Tensor> _inputs = null!;
    private string _output = "";

    [GlobalSetup]
    public void Setup()
    {
        bool cnn = Graph.StartsWith("cifar", StringComparison.Ordinal);
        byte[] bytes = File.ReadAllBytes(SharedGraph(cnn ? "utensor_test_cnn_float.pb" : "tf2onnx_fc_layers.pb"));
        if (Precision != "fp32")
        {
            var options = new QuantizationOptions { Mode = QuantizationMode.Weights, GraphDefPerChannel = Precision == "weights-per-channel" };
            bytes = GraphDefQuantizer.Quantize(bytes, Graph, options).Output.ToByteArray();
        }
        _session = ModelSession.Create(GraphDefModel.Load(bytes, Graph), new SessionOptions { Threads = 1 });
        int batch = int.Parse(Graph[(Graph.LastIndexOf('b') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        if (cnn)
        {
            _inputs = new()
            {
                ["img_batch"] = Tensor.Create(Enumerable.Range(0, batch * 32 * 32 * 3).Select(i => (i % 255) / 255f).ToArray(), batch, 32, 32, 3),
                ["keep_prob_1"] = Tensor.Create([1f]),
                ["keep_prob_2"] = Tensor.Create([1f]),
            };
            _output = "pred_label";
        }
        else
        {
            _inputs = new() { ["X"] = Tensor.Create(Enumerable.Range(0, batch * 784).Select(i => (i % 97) / 97f).ToArray(), batch, 784) };
            _output = "output";
        }
    }

    [Benchmark]
    public Tensor Run() => _session.Run(_inputs, [_output])[_output];

    private static string SharedGraph(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Quantize.Build.sln")))
                return Path.Combine(dir.FullName, "..", "shared", "tf-graphs", name);
        }
        throw new InvalidOperationException("Quantize.Build.sln not found above the benchmark's folder.");
    }
}
