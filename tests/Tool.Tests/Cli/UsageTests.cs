namespace Quantize.Tool.Tests.Cli;

/// <summary>Usage errors, help and version.</summary>
public class UsageTests
{
    public static TheoryData<string[]> UsageErrors() => new(
        ["inspect", "model.onnx", "--bogus"],
        ["inspect"],
        [],
        ["frobnicate"],
        ["inspect", "a.onnx", "b.onnx"],
        ["--json"]);

    [Theory]
    [MemberData(nameof(UsageErrors))]
    public void Usage_error_exits_2_with_one_line(string[] args)
    {
        var run = CliRun.Of(args);
        Assert.Equal(2, run.ExitCode);
        Assert.Equal("", run.Stdout);
        string line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("--help", line);
    }

    [Fact]
    public void Unknown_option_is_named()
    {
        Assert.Contains("'--bogus'", CliRun.Of("inspect", "model.onnx", "--bogus").Stderr);
    }

    [Fact]
    public void An_at_sign_argument_is_a_model_path_not_a_response_file()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"@no-such-model-{Guid.NewGuid():N}.onnx");
        var run = CliRun.Of("inspect", missing);
        Assert.Equal(3, run.ExitCode);
        Assert.StartsWith($"error: {missing}: ", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void Options_may_come_before_the_command_and_the_model_after_a_double_dash()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.onnx");
        var run = CliRun.Of("--verbose", "inspect", "--json", "--", missing);
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("   at ", run.Stderr);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("inspect", "--help")]
    public void Help_shows_usage_an_example_and_the_exit_codes(params string[] args)
    {
        var run = CliRun.Of(args);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Stderr);
        Assert.Contains("Usage:", run.Stdout);
        Assert.Contains("inspect", run.Stdout);
        Assert.Contains("dotnet quantize inspect model.onnx", run.Stdout);
        foreach (string code in new[] { "0  success", "1  failure (including an accuracy target not met)", "2  usage error", "3  the model file is missing" })
            Assert.Contains(code, run.Stdout);
    }

    [Fact]
    public void Version_is_the_tools_own()
    {
        var run = CliRun.Of("--version");
        Assert.Equal(0, run.ExitCode);
        var version = typeof(QuantizeCli).Assembly.GetName().Version!;
        Assert.StartsWith($"{version.Major}.{version.Minor}.{version.Build}", run.Stdout);
    }

    [Fact]
    public void Unexpected_failure_exits_1_with_one_line()
    {
        string model = Quantize.Tests.SharedData.Require("tf-graphs/nnstreamer_mnist.pb");
        var stderr = new StringWriter { NewLine = "\n" };
        int code = QuantizeCli.Run(["inspect", model], new FailingWriter(), stderr);
        Assert.Equal(1, code);
        string line = Assert.Single(stderr.ToString().TrimEnd('\n').Split('\n'));
        Assert.Equal("error: IOException: disk full", line);
    }

    private sealed class FailingWriter : StringWriter
    {
        public override void Write(string? value) => throw new IOException("disk full");
    }
}
