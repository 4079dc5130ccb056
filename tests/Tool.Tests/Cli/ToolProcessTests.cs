using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>The built tool, run as a real process, to prove Program's wiring (arguments, streams, exit code).</summary>
public class ToolProcessTests
{
    private static string ToolAssembly()
    {
        string path = typeof(ToolProcessTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "ToolAssembly").Value!;
        Assert.True(File.Exists(path), $"The tool is not built at {path}; build the solution first.");
        return path;
    }

    private static (int ExitCode, string Stdout, string Stderr) RunTool(params string[] args)
    {
        // The dotnet host that runs the tests (set by dotnet test / MSBuild), else the one on PATH.
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ToolAssembly());
        foreach (string arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "the tool did not finish within a minute");
        return (process.ExitCode, stdout, stderr.Result);
    }

    [Fact]
    public void Inspect_json_prints_one_document_and_exits_0()
    {
        string model = Path.Combine(SharedData.Require("onnx-node-tests/test_abs"), "model.onnx");
        var (code, stdout, stderr) = RunTool("inspect", model, "--json");
        Assert.True(code == 0, $"exit code {code}; stderr: {stderr}");
        Assert.Equal("", stderr);
        Assert.NotEqual('\uFEFF', stdout[0]);
        using var json = JsonDocument.Parse(stdout);
        Assert.Equal("onnx", json.RootElement.GetProperty("format").GetString());
        Assert.Equal(1, json.RootElement.GetProperty("ops").GetProperty("Abs").GetInt32());
    }

    /// <summary>The runtime issue's memory bound: MiniLM at batch 1 peaks under twice its file size while running (a process of its own).</summary>
    [Fact]
    public void Bench_runs_MiniLM_within_twice_its_file_size()
    {
        string folder = Directory.CreateTempSubdirectory("quantize-bench-").FullName;
        try
        {
            string model = Path.Combine(folder, "all-MiniLM-L6-v2.onnx");
            File.WriteAllBytes(model, RealModels.ReadManifestResource(RealModels.MiniLMAssemblyPath, RealModels.MiniLMResource));
            var (code, stdout, stderr) = RunTool("bench", model, "--data", SharedData.Require("calibration/minilm/s000"),
                "--threads", "1", "--warmup", "5", "--iterations", "5", "--json");
            Assert.True(code == 0, $"exit code {code}; stderr: {stderr}");
            using var json = JsonDocument.Parse(stdout);
            long modelBytes = json.RootElement.GetProperty("modelBytes").GetInt64();
            long peak = json.RootElement.GetProperty("peakWorkingSetBytes").GetInt64();
            Assert.True(json.RootElement.GetProperty("medianMilliseconds").GetDouble() > 0);
            Assert.True(peak < 2 * modelBytes, $"peak working set {peak / 1048576.0:F1} MiB is not under twice the model's {modelBytes / 1048576.0:F1} MiB");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Missing_model_exits_3_with_one_line()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.onnx");
        var (code, stdout, stderr) = RunTool("inspect", missing);
        Assert.Equal(3, code);
        Assert.Equal("", stdout);
        string line = Assert.Single(stderr.TrimEnd('\r', '\n').Split('\n'));
        Assert.StartsWith($"error: {missing}: ", line);
    }
}
