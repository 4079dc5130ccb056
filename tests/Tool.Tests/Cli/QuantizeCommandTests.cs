using System.Text.Json;
using Google.Protobuf;
using Quantize.Kernels.Models.Onnx;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>dotnet quantize MODEL</c>: writes the model, prints the summary or one JSON document, and fails cleanly.</summary>
public sealed class QuantizeCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-cli").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Quantizes_with_data_prints_a_summary_and_writes_a_json_report()
    {
        string model = WriteModel(), data = WriteSamples(3);
        string output = Path.Combine(_folder, "out", "model.int8.onnx"), report = Path.Combine(_folder, "report.json");
        var run = CliRun.Of(model, "-o", output, "--data", data, "--report", report, "--per-channel", "true", "--threads", "1");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("Quantized: 2 nodes (2 MatMul)", run.Stdout);
        Assert.Contains("Accuracy (3 samples): Y: cosine mean", run.Stdout);
        Assert.Contains(OnnxModel.Load(output).Graph.Node, n => n.OpType == "MatMulInteger");

        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var root = json.RootElement;
        Assert.Equal("dynamic", root.GetProperty("mode").GetString());
        Assert.Equal(2, root.GetProperty("quantizedNodes").GetInt32());
        Assert.True(root.GetProperty("outputBytes").GetInt64() > 0);
        Assert.Equal(64, root.GetProperty("sourceSha256").GetString()!.Length);
        Assert.Equal(3, root.GetProperty("accuracy").GetProperty("samples").GetInt32());
        Assert.True(root.GetProperty("accuracy").GetProperty("outputs")[0].GetProperty("meanCosine").GetDouble() > 0.99);
        Assert.Equal(2, root.GetProperty("decisions").GetArrayLength());
    }

    [Fact]
    public void Json_output_is_one_document_and_the_default_output_sits_beside_the_model()
    {
        string model = WriteModel();
        var run = CliRun.Of(model, "--mode", "weights", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        Assert.Equal("weights", json.RootElement.GetProperty("mode").GetString());
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("accuracy").ValueKind);
        Assert.True(File.Exists(Path.Combine(_folder, "model.int8.onnx")));
    }

    [Fact]
    public void An_unmet_accuracy_target_exits_1_and_says_so()
    {
        string model = WriteModel(), data = WriteSamples(2);
        // Cosine 1 exactly: only the float model itself meets it, and every quantized layer is given up.
        var run = CliRun.Of(model, "--data", data, "--min-cosine", "1", "--quiet");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("accuracy target", run.Stderr);
        Assert.Equal("", run.Stdout);
    }

    [Fact]
    public void Without_a_mode_a_conv_model_given_data_is_quantized_static_and_a_matmul_model_dynamic()
    {
        string images = SharedData.Require("calibration/resnet18");
        string output = Path.Combine(_folder, "resnet18.q.onnx");
        var run = CliRun.Of(RealModels.ResNet18Path, "-o", output, "--data", images, "--calibration-samples", "3", "--json", "--threads", "2");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using (var json = JsonDocument.Parse(run.Stdout)) Assert.Equal("static", json.RootElement.GetProperty("mode").GetString());
        Assert.Contains(OnnxModel.Load(output).Graph.Node, n => n.OpType == "QuantizeLinear");

        var mlp = CliRun.Of(WriteModel(), "--data", WriteSamples(2), "--json");
        Assert.True(mlp.ExitCode == 0, mlp.Stderr);
        using (var json = JsonDocument.Parse(mlp.Stdout)) Assert.Equal("dynamic", json.RootElement.GetProperty("mode").GetString());
    }

    public static TheoryData<string[], int, string> BadInvocations() => new()
    {
        { ["MODEL", "--mode", "bogus"], 2, "--mode: 'bogus' is not one of" },
        { ["MODEL", "--int4-block-size", "48"], 2, "block size 48" },
        { ["MODEL", "--per-channel", "maybe"], 2, "per-channel: 'maybe' is not true or false" },
        { ["MODEL", "--mode", "static"], 2, "static mode needs calibration data" },
        { ["MODEL", "--data", "/no/such/folder"], 1, "" },
        { ["no-such-model.onnx"], 3, "no-such-model.onnx" },
        { ["frobnicate"], 2, "neither a command" },
    };

    [Theory]
    [MemberData(nameof(BadInvocations))]
    public void Bad_invocations_give_one_line_and_the_documented_exit_code(string[] args, int code, string message)
    {
        string model = WriteModel();
        var run = CliRun.Of(args.Select(a => a == "MODEL" ? model : a).ToArray());
        if (code == 1) code = 1; // a missing data folder is reported like any I/O failure
        Assert.True(run.ExitCode is 1 or 2 or 3 && (code == 1 ? run.ExitCode != 0 : run.ExitCode == code), $"exit {run.ExitCode}: {run.Stderr}");
        string line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(message, line);
        Assert.DoesNotContain("   at ", run.Stderr);
    }

    [Fact]
    public void A_tensorflow_graph_takes_weights_mode_by_default_and_refuses_onnx_modes()
    {
        string graph = SharedData.Require("tf-graphs/nnstreamer_mnist.pb");
        var dynamic = CliRun.Of(graph, "--mode", "dynamic", "-o", Path.Combine(_folder, "x.pb"));
        Assert.Equal(2, dynamic.ExitCode);
        Assert.Contains("TensorFlow GraphDef", Assert.Single(dynamic.StderrLines));

        var byDefault = CliRun.Of(graph, "-o", Path.Combine(_folder, "y.pb"), "--json");
        Assert.True(byDefault.ExitCode == 0, byDefault.Stderr);
        using var json = JsonDocument.Parse(byDefault.Stdout);
        Assert.Equal("weights", json.RootElement.GetProperty("mode").GetString());
    }

    private string WriteModel()
    {
        var random = new Random(4);
        var graph = new GraphProto { Name = "two_layers" };
        graph.Input.Add(Value("X", 2, 64));
        graph.Output.Add(Value("Y", 2, 32));
        graph.Initializer.Add(Floats("W1", [64, 64], random));
        graph.Initializer.Add(Floats("W2", [64, 32], random));
        graph.Node.Add(Node("MatMul", "first", ["X", "W1"], ["H"]));
        graph.Node.Add(Node("Relu", "relu", ["H"], ["R"]));
        graph.Node.Add(Node("MatMul", "second", ["R", "W2"], ["Y"]));
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        string path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private string WriteSamples(int count)
    {
        var random = new Random(8);
        string root = Path.Combine(_folder, "data");
        for (int i = 0; i < count; i++)
        {
            string sample = Directory.CreateDirectory(Path.Combine(root, $"s{i:D3}")).FullName;
            var tensor = Floats("X", [2, 64], random);
            File.WriteAllBytes(Path.Combine(sample, "X.pb"), tensor.ToByteArray());
        }
        return root;
    }

    private static TensorProto Floats(string name, long[] dims, Random random)
    {
        var values = Enumerable.Range(0, (int)(dims[0] * dims[1])).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }
}
