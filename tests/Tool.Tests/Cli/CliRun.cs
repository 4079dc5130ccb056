using System.Text.Json;

namespace Quantize.Tool.Tests.Cli;

/// <summary>One in-process run of the command line: exit code and everything written.</summary>
internal sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    public static CliRun Of(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = QuantizeCli.Run(args, stdout, stderr);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs <c>inspect PATH --json</c>, expects success, and parses the one JSON document it prints.</summary>
    public static JsonElement InspectJson(string path)
    {
        var run = Of("inspect", path, "--json");
        Assert.True(run.ExitCode == 0, $"exit code {run.ExitCode}; stderr: {run.Stderr}");
        Assert.Equal("", run.Stderr);
        // Parse throws on anything after the document but whitespace: this proves "exactly one document".
        using var document = JsonDocument.Parse(run.Stdout);
        return document.RootElement.Clone();
    }

    /// <summary>The lines written to stderr, without the final newline.</summary>
    public string[] StderrLines => Stderr.TrimEnd('\n').Split('\n');
}
