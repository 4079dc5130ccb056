namespace Quantize.Tool.Tests.Cli;

/// <summary>Help at every level: usage, the command's own examples, the exit codes.</summary>
public class HelpTests
{
    [Theory]
    [InlineData("", "dotnet quantize encoder.onnx -o encoder.int8.onnx")]
    [InlineData("inspect", "dotnet quantize inspect model.onnx")]
    [InlineData("compare", "dotnet quantize compare encoder.onnx encoder.int8.onnx --data calibration/")]
    [InlineData("run", "dotnet quantize run resnet.int8.onnx --input data=cat.npy")]
    [InlineData("bench", "dotnet quantize bench encoder.int8.onnx --baseline encoder.onnx")]
    public void Every_command_shows_examples_and_exit_codes(string command, string example)
    {
        var run = CliRun.Of(command.Length == 0 ? ["--help"] : [command, "--help"]);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Stderr);
        Assert.Contains("Usage:", run.Stdout);
        Assert.Contains("Examples:", run.Stdout);
        Assert.Contains(example, run.Stdout);
        foreach (string code in new[] { "0  success", "1  failure (including an accuracy target not met)", "2  usage error", "3  the model file is missing" })
            Assert.Contains(code, run.Stdout);
    }

    [Fact]
    public void Root_help_lists_every_command()
    {
        string help = CliRun.Of("--help").Stdout;
        foreach (string command in new[] { "inspect", "compare", "run", "bench" }) Assert.Contains($"  {command} ", help);
    }
}
