using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>dotnet quantize MODEL.pb --mode weights|round</c>: TensorFlow GraphDefs through the same root command.</summary>
public sealed class QuantizeGraphDefTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-graphdef").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("weights", "Dequantize")]
    [InlineData("round", "MatMul")]
    public void Quantizes_a_graphdef_to_the_default_name(string mode, string opType)
    {
        string graph = Path.Combine(_folder, "mnist.pb");
        File.Copy(SharedData.Require("tf-graphs/nnstreamer_mnist.pb"), graph);
        var run = CliRun.Of(graph, "--mode", mode, "--minimum-size", "16");
        Assert.True(run.ExitCode == 0, run.Stderr);
        string output = Path.Combine(_folder, $"mnist.{mode}.pb");
        var model = Assert.IsType<GraphDefModel>(Model.Load(output));
        Assert.Contains(model.Proto.Node, n => n.Op == opType);
        Assert.Contains($"({mode})", run.Stdout);
    }

    [Fact]
    public void Writes_where_asked_and_refuses_data()
    {
        string graph = SharedData.Require("tf-graphs/tf2onnx_fc_layers.pb");
        string output = Path.Combine(_folder, "fc.pb");
        var run = CliRun.Of(graph, "--mode", "weights", "-o", output, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("\"quantizedNodes\": 3", run.Stdout);
        Assert.True(new FileInfo(output).Length < new FileInfo(graph).Length / 3);

        var refused = CliRun.Of(graph, "--mode", "weights", "-o", output, "--data", _folder);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("without --data", Assert.Single(refused.StderrLines));
    }
}
