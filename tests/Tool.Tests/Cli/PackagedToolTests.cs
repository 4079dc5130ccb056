using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>
/// The tool as users get it: packed into a local folder feed, installed with <c>dotnet tool install --tool-path</c>,
/// and run as a process with redirected output and <c>CI</c> set.
/// </summary>
public sealed class InstalledTool : IDisposable
{
    public InstalledTool()
    {
        Root = Directory.CreateTempSubdirectory("quantize-e2e-").FullName;
        var metadata = typeof(InstalledTool).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value);
        string project = metadata["ToolProject"]!, configuration = metadata["Configuration"]!;
        string feed = Directory.CreateDirectory(Path.Combine(Root, "feed")).FullName;
        string tools = Path.Combine(Root, "tools");
        // A unique version: nothing cached from an earlier run can stand in for this build.
        Version = $"0.0.0-e2e.{DateTime.UtcNow:yyyyMMddHHmmss}";
        var pack = Run(Dotnet, ["pack", project, "-c", configuration, "--no-build", "-o", feed, $"-p:PackageVersion={Version}", "-nodeReuse:false"]);
        if (pack.ExitCode != 0) throw new InvalidOperationException($"dotnet pack failed (build the solution in {configuration} first):\n{pack.Stdout}\n{pack.Stderr}");
        // Only the local feed: the install needs no network.
        string config = Path.Combine(Root, "nuget.config");
        File.WriteAllText(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration><packageSources><clear /><add key="local" value="{feed}" /></packageSources></configuration>
            """);
        var install = Run(Dotnet, ["tool", "install", "Quantize.Tool", "--tool-path", tools, "--add-source", feed, "--configfile", config, "--version", Version]);
        if (install.ExitCode != 0) throw new InvalidOperationException($"dotnet tool install failed:\n{install.Stdout}\n{install.Stderr}");
        Command = Path.Combine(tools, OperatingSystem.IsWindows() ? "dotnet-quantize.exe" : "dotnet-quantize");
    }

    public string Root { get; }

    public string Version { get; }

    /// <summary>The installed command.</summary>
    public string Command { get; }

    /// <summary>The dotnet host that runs the tests (set by dotnet test / MSBuild), else the one on PATH.</summary>
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    public void Dispose() => Directory.Delete(Root, recursive: true);

    /// <summary>Runs the installed tool.</summary>
    public ProcessRun Tool(params string[] args) => Run(Command, args);

    /// <summary>Runs the installed tool with <c>CI</c> unset: only the redirection says "not a terminal".</summary>
    public ProcessRun ToolOutsideCI(params string[] args) => Run(Command, args, ci: false);

    public static ProcessRun Run(string program, IEnumerable<string> args, bool ci = true)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        if (ci) start.Environment["CI"] = "1";
        else start.Environment.Remove("CI");
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        // No MSBuild server or reused nodes: they would outlive pack and hold its output pipes open.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        // The installed apphost finds the runtime beside the host that runs the tests.
        if (Path.IsPathRooted(Dotnet)) start.Environment["DOTNET_ROOT"] = Path.GetDirectoryName(Dotnet);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within 5 minutes.");
        }
        return new ProcessRun(process.ExitCode, stdout, stderr.Result);
    }
}

/// <summary>One process run: exit code and output.</summary>
public sealed record ProcessRun(int ExitCode, string Stdout, string Stderr)
{
    public string[] StderrLines => Stderr.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
}

/// <summary>Each command of the installed tool on ResNet18; each --json output carries the fields the README documents.</summary>
public sealed class PackagedToolTests(InstalledTool tool) : IClassFixture<InstalledTool>
{
    [Fact]
    public void Every_command_runs_on_ResNet18_and_its_json_has_the_documented_fields()
    {
        string resnet = RealModels.ResNet18Path;
        string work = Directory.CreateDirectory(Path.Combine(tool.Root, "work")).FullName;
        string data = Directory.CreateDirectory(Path.Combine(work, "data")).FullName;
        foreach (string sample in new[] { "astronaut", "chelsea" })
        {
            string folder = Directory.CreateDirectory(Path.Combine(data, sample)).FullName;
            File.Copy(Path.Combine(SharedData.Require("calibration/resnet18"), sample, "Input247.pb"), Path.Combine(folder, "Input247.pb"));
        }
        var fields = ReadmeTests.DocumentedJsonFields();

        var version = tool.Tool("--version");
        Assert.Equal(0, version.ExitCode);
        var assemblyVersion = typeof(QuantizeCli).Assembly.GetName().Version!;
        Assert.StartsWith($"{assemblyVersion.Major}.{assemblyVersion.Minor}.{assemblyVersion.Build}", version.Stdout);

        string quantized = Path.Combine(work, "resnet18.int8.onnx"), report = Path.Combine(work, "report.json");
        var quantize = Succeeds(tool.Tool(resnet, "-o", quantized, "--mode", "static", "--data", data, "--report", report, "--json"));
        using (var json = Documented(quantize, fields["quantize"]))
        {
            Assert.Equal("static", json.RootElement.GetProperty("mode").GetString());
            Assert.True(json.RootElement.GetProperty("quantizedNodes").GetInt32() > 0);
            Assert.Equal(2, json.RootElement.GetProperty("accuracy").GetProperty("samples").GetInt32());
        }
        Assert.Contains(quantize.StderrLines, l => l.EndsWith("] calibrating", StringComparison.Ordinal));
        using (JsonDocument.Parse(File.ReadAllText(report))) { }

        using (var json = Documented(Succeeds(tool.Tool("inspect", quantized, "--json")), fields["inspect"]))
            Assert.Equal("onnx", json.RootElement.GetProperty("format").GetString());

        using (var json = Documented(Succeeds(tool.Tool("compare", resnet, quantized, "--data", data, "--layers", "--json")), fields["compare"]))
        {
            var output = json.RootElement.GetProperty("accuracy").GetProperty("outputs")[0];
            Assert.True(output.GetProperty("meanCosine").GetDouble() > 0.95, output.ToString());
            Assert.True(json.RootElement.GetProperty("accuracy").GetProperty("layers").GetArrayLength() > 10);
        }

        string saved = Path.Combine(work, "outputs");
        using (var json = Documented(Succeeds(tool.Tool("run", quantized, "--data", Path.Combine(data, "astronaut"), "--save", saved, "--json")), fields["run"]))
        {
            var output = json.RootElement.GetProperty("outputs")[0];
            Assert.Equal([1, 512, 1, 1], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray());
            Assert.True(File.Exists(output.GetProperty("saved").GetString()));
        }

        using (var json = Documented(Succeeds(tool.Tool("bench", quantized, "--baseline", resnet, "--warmup", "1", "--iterations", "2", "--threads", "1", "--json")), fields["bench"]))
            Assert.True(json.RootElement.GetProperty("speedup").GetDouble() > 0);
    }

    [Fact]
    public void Redirected_progress_is_plain_lines_outside_CI_too()
    {
        using var models = new ToolTestModels();
        string model = models.WriteClassifier(), data = models.WriteSamples(3);
        var run = Succeeds(tool.ToolOutsideCI(model, "--mode", "static", "--data", data, "-o", models.Path("static.onnx")));
        Assert.Contains(run.StderrLines, l => l.EndsWith("] calibrating", StringComparison.Ordinal));
        Assert.Contains("Quantized: ", run.Stdout);
    }

    public static TheoryData<string[], int> BadInvocations() => new()
    {
        { ["inspect", "RESNET", "--bogus"], 2 },
        { ["compare", "MISSING", "RESNET"], 3 },
        { ["run", "MISSING"], 3 },
        { ["RESNET", "--mode", "static", "-o", "OUT"], 2 },
        { ["TFGRAPH", "--mode", "int4", "-o", "OUT"], 2 },
        { ["bench", "RESNET", "--batch", "2"], 2 },
    };

    /// <summary>Unknown option, missing file, wrong mode for the format, static mode without data, a batch the model cannot take.</summary>
    [Theory]
    [MemberData(nameof(BadInvocations))]
    public void Bad_invocations_give_one_line_and_exit_2_or_3(string[] args, int code)
    {
        string resnet = RealModels.ResNet18Path;
        string graph = SharedData.Require("tf-graphs/utensor_quant_mnist.pb");
        string missing = Path.Combine(tool.Root, "missing.onnx"), output = Path.Combine(tool.Root, "out.onnx");
        var run = tool.Tool(args.Select(a => a switch { "RESNET" => resnet, "MISSING" => missing, "OUT" => output, "TFGRAPH" => graph, _ => a }).ToArray());
        Assert.True(run.ExitCode == code, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        string line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.DoesNotContain("   at ", run.Stderr);
        Assert.Equal("", run.Stdout);
        NoControlCharacters(run);
    }

    private static ProcessRun Succeeds(ProcessRun run)
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        NoControlCharacters(run);
        return run;
    }

    /// <summary>Redirected output has no progress-bar control characters (carriage returns, escapes, backspaces).</summary>
    private static void NoControlCharacters(ProcessRun run)
    {
        string text = (run.Stdout + run.Stderr).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.DoesNotContain(text, c => char.IsControl(c) && c != '\n');
    }

    /// <summary>Parses stdout as exactly one JSON document and checks every documented field path is there.</summary>
    private static JsonDocument Documented(ProcessRun run, string[] paths)
    {
        var json = JsonDocument.Parse(run.Stdout);
        foreach (string path in paths)
            Assert.True(Has(json.RootElement, path.Split('.')), $"The --json output lacks the documented field '{path}':\n{run.Stdout[..Math.Min(2000, run.Stdout.Length)]}");
        return json;
    }

    private static bool Has(JsonElement element, string[] path)
    {
        if (path.Length == 0) return true;
        if (element.ValueKind != JsonValueKind.Object) return false;
        bool array = path[0].EndsWith("[]", StringComparison.Ordinal);
        if (!element.TryGetProperty(array ? path[0][..^2] : path[0], out var value)) return false;
        if (!array) return path.Length == 1 || Has(value, path[1..]);
        return value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0 && value.EnumerateArray().All(item => Has(item, path[1..]));
    }
}
