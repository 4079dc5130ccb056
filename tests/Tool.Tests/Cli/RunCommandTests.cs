using System.Text.Json;
using Quantize.Core.Running;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>run</c>: outputs, top-k and saved arrays equal ONNX Runtime's; inputs from files, a folder or generated.</summary>
public sealed class RunCommandTests : IDisposable
{
    private readonly ToolTestModels _models = new();

    public void Dispose() => _models.Dispose();

    [Fact]
    public void A_tensorflow_graph_reads_its_digit_before_and_after_weights_mode()
    {
        // label_image's role for a GraphDef: nnstreamer's MNIST graph on its sample "9" (pixels scaled to [-1, 1], as its README says).
        string graph = Quantize.Tests.SharedData.Require("tf-graphs/nnstreamer_mnist.pb");
        byte[] raw = File.ReadAllBytes(Quantize.Tests.SharedData.Require("tf-graphs/nnstreamer_mnist_digit9.raw"));
        string input = _models.Path("digit.npy"), quantized = _models.Path("mnist.weights.pb");
        TensorFiles.WriteNpy(input, Tensor.Create(raw.Select(v => (v - 127.5f) / 127.5f).ToArray(), 1, 784));
        var quantize = CliRun.Of(graph, "--mode", "weights", "-o", quantized, "--quiet");
        Assert.True(quantize.ExitCode == 0, quantize.Stderr);
        foreach (string model in new[] { graph, quantized })
        {
            var run = CliRun.Of("run", model, "--input", $"input:0={input}", "--top", "1", "--json");
            Assert.True(run.ExitCode == 0, run.Stderr);
            using var json = JsonDocument.Parse(run.Stdout);
            var output = Assert.Single(json.RootElement.GetProperty("outputs").EnumerateArray());
            Assert.Equal(9, output.GetProperty("top")[0][0].GetProperty("index").GetInt32());
        }
    }

    [Fact]
    public void Npy_input_gives_onnx_runtimes_top_k_with_labels_and_saves_the_output()
    {
        string model = _models.WriteClassifier();
        var x = ToolTestModels.ReadSamples(_models.WriteSamples(1, rows: 2))[0];
        string input = _models.Path("x.npy"), labels = _models.Path("labels.txt"), saveTo = _models.Path("out");
        TensorFiles.WriteNpy(input, x);
        File.WriteAllLines(labels, Enumerable.Range(0, 10).Select(i => $"class {i}"));

        var run = CliRun.Of("run", model, "--input", $"X={input}", "--labels", labels, "--top", "3", "--save", saveTo, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal(model, root.GetProperty("model").GetString());
        Assert.False(root.GetProperty("generatedInputs").GetBoolean());
        var inputInfo = Assert.Single(root.GetProperty("inputs").EnumerateArray());
        Assert.Equal("X", inputInfo.GetProperty("name").GetString());
        Assert.Equal(input, inputInfo.GetProperty("source").GetString());
        var output = Assert.Single(root.GetProperty("outputs").EnumerateArray());
        Assert.Equal(ToolTestModels.Output, output.GetProperty("name").GetString());
        Assert.Equal("float32", output.GetProperty("elementType").GetString());
        Assert.Equal([2, 10], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray());

        var (expected, _) = ToolTestModels.RunOrt(model, x);
        Assert.Equal(expected.Min(), output.GetProperty("min").GetDouble(), 4);
        Assert.Equal(expected.Max(), output.GetProperty("max").GetDouble(), 4);
        var top = output.GetProperty("top").EnumerateArray().ToList();
        Assert.Equal(2, top.Count);
        for (int row = 0; row < 2; row++)
        {
            var scores = expected.AsSpan(row * 10, 10).ToArray();
            var order = Enumerable.Range(0, 10).OrderByDescending(i => scores[i]).Take(3).ToArray();
            var listed = top[row].EnumerateArray().ToList();
            Assert.Equal(order, listed.Select(c => c.GetProperty("index").GetInt32()).ToArray());
            Assert.Equal(order.Select(i => $"class {i}").ToArray(), listed.Select(c => c.GetProperty("label").GetString()!).ToArray());
            for (int i = 0; i < 3; i++) Assert.Equal(scores[order[i]], listed[i].GetProperty("score").GetDouble(), 4);
        }

        // The saved array: a file-safe name, and ONNX Runtime's values.
        string saved = output.GetProperty("saved").GetString()!;
        Assert.Equal(Path.Combine(saveTo, "scores_0_out.npy"), saved);
        var back = TensorFiles.Read(saved);
        Assert.Equal([2, 10], back.Shape.ToArray());
        var values = back.ToArray<float>();
        for (int i = 0; i < values.Length; i++) Assert.Equal(expected[i], values[i], 4);
    }

    [Fact]
    public void Text_lists_the_top_classes_and_a_one_input_model_takes_a_bare_file()
    {
        string model = _models.WriteClassifier();
        string sample = Path.Combine(_models.WriteSamples(1, rows: 1), "s000", "X.pb");
        var run = CliRun.Of("run", model, "-i", sample, "--top", "2");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"Input X: float32 [1, 64] from {sample}", run.Stdout);
        Assert.Contains($"Output {ToolTestModels.Output}: float32 [1, 10], min ", run.Stdout);
        Assert.Contains("  top 2:", run.Stdout);
    }

    [Fact]
    public void Without_inputs_they_come_from_data_or_are_generated()
    {
        string model = _models.WriteClassifier(), data = _models.WriteSamples(2);
        using (var fromData = JsonDocument.Parse(CliRun.Of("run", model, "--data", data, "--json").Stdout))
        {
            Assert.False(fromData.RootElement.GetProperty("generatedInputs").GetBoolean());
            Assert.Equal([4, 64], fromData.RootElement.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray());
        }
        var generated = CliRun.Of("run", model, "--json");
        Assert.True(generated.ExitCode == 0, generated.Stderr);
        using var json = JsonDocument.Parse(generated.Stdout);
        Assert.True(json.RootElement.GetProperty("generatedInputs").GetBoolean());
        Assert.Equal("generated", json.RootElement.GetProperty("inputs")[0].GetProperty("source").GetString());
        Assert.Contains("Inputs: generated from the declared input types", CliRun.Of("run", model).Stdout);
    }

    public static TheoryData<string[], int, string> BadInvocations() => new()
    {
        { ["run", "MODEL", "--input", "Y=x.npy"], 2, "the model has no input 'Y'" },
        { ["run", "MODEL", "--input", "X=WRONG"], 2, "input 'X' must have shape" },
        { ["run", "MODEL", "--input", "X=MISSING"], 1, "does not exist" },
        { ["run", "MODEL", "--input", "X=x.npy", "--data", "DATA"], 2, "not both" },
        { ["run", "MODEL", "--bogus"], 2, "'--bogus'" },
        { ["run", "NOMODEL"], 3, "NOMODEL" },
    };

    [Theory]
    [MemberData(nameof(BadInvocations))]
    public void Bad_invocations_give_one_line_and_the_documented_exit_code(string[] args, int code, string message)
    {
        string model = _models.WriteClassifier();
        string wrong = _models.Path("wrong.npy"), missing = _models.Path("missing.npy"), noModel = _models.Path("no-model.onnx");
        TensorFiles.WriteNpy(wrong, Tensor.Create(new float[8], 2, 4));
        var run = CliRun.Of(args.Select(a => a.Replace("WRONG", wrong).Replace("MISSING", missing).Replace("NOMODEL", noModel)
            .Replace("MODEL", model).Replace("DATA", _models.Folder)).ToArray());
        Assert.True(run.ExitCode == code, $"exit {run.ExitCode}: {run.Stderr}");
        string line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains(message.Replace("NOMODEL", noModel), line);
        Assert.Equal("", run.Stdout);
    }

    [Theory]
    [InlineData("scores:0/out", "scores_0_out")]
    [InlineData("..", "output")]
    [InlineData("a b.c", "a_b.c")]
    public void Output_names_become_file_safe(string name, string expected) => Assert.Equal(expected, RunCommand.FileSafe(name));
}
