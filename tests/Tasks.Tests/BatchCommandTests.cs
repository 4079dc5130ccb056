using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;

namespace Quantize.Build.Tasks.Tests;

/// <summary>
/// <c>dotnet-quantize msbuild-batch</c> run directly (as the task runs it, without MSBuild): several items at once,
/// calibration from a glob of sample folders, the cache, and one result line per item.
/// </summary>
public sealed class BatchCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quantize-batch-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Items_are_quantized_concurrently_then_taken_from_the_cache()
    {
        string model = Path.Combine(_root, "m.onnx");
        File.WriteAllBytes(model, TestModels.Mlp(31));
        for (int i = 0; i < 3; i++) TestModels.WriteSample(Path.Combine(_root, "data", $"s{i}"), 50 + i);
        TestModels.WriteSample(Path.Combine(_root, "data", "unused"), 9);
        var items = new JsonArray
        {
            Item("0", model, "out/static.onnx", new JsonObject { ["Mode"] = "static" }, samples: ["data/s0", "data/s1", "data/s2"]),
            Item("1", model, "out/dynamic.onnx", new JsonObject { ["Mode"] = "dynamic", ["MinimumSize"] = "16" }),
            Item("2", model, "out/bad.onnx", new JsonObject { ["Mode"] = "sideways" }),
        };

        var first = Run(items, cache: Path.Combine(_root, "cache"));
        Assert.Equal(1, first.ExitCode); // item 2 failed
        Assert.Equal("quantized", (string?)first.Results["0"]["status"]);
        Assert.Equal("quantized", (string?)first.Results["1"]["status"]);
        Assert.Equal("error", (string?)first.Results["2"]["status"]);
        Assert.Equal("QNT006", (string?)first.Results["2"]["code"]);
        Assert.Contains("Mode", (string?)first.Results["2"]["message"]);
        // The static item measured accuracy on its three samples; the report says so.
        Assert.NotNull((double?)first.Results["0"]["worstCosine"]);
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(_root, "out/static.onnx.report.json")))!;
        Assert.Equal(3, (int)report["accuracy"]!["samples"]!);
        byte[] staticBytes = File.ReadAllBytes(Path.Combine(_root, "out/static.onnx"));

        // Again, outputs deleted: both from the cache, byte for byte.
        File.Delete(Path.Combine(_root, "out/static.onnx"));
        File.Delete(Path.Combine(_root, "out/dynamic.onnx"));
        var second = Run(new JsonArray { items[0]!.DeepClone(), items[1]!.DeepClone() }, cache: Path.Combine(_root, "cache"));
        Assert.Equal(0, second.ExitCode);
        Assert.Equal("cached", (string?)second.Results["0"]["status"]);
        Assert.Equal("cached", (string?)second.Results["1"]["status"]);
        Assert.Equal(staticBytes, File.ReadAllBytes(Path.Combine(_root, "out/static.onnx")));

        // Another sample set is another key; with the cache off nothing is looked up.
        var other = Run(new JsonArray { Item("0", model, "out/static2.onnx", new JsonObject { ["Mode"] = "static" }, samples: ["data/s0", "data/s1"]) },
            cache: Path.Combine(_root, "cache"));
        Assert.Equal("quantized", (string?)other.Results["0"]["status"]);
        var off = Run(new JsonArray { items[1]!.DeepClone() }, cache: null);
        Assert.Equal("quantized", (string?)off.Results["1"]["status"]);
    }

    [Fact]
    public void A_tensorflow_graph_takes_weights_mode_and_refuses_onnx_modes()
    {
        string graph = Quantize.Tests.SharedData.Require("tf-graphs/nnstreamer_mnist.pb");
        var items = new JsonArray
        {
            Item("0", graph, "out/mnist.weights.pb", new JsonObject { ["Mode"] = "weights" }),
            Item("1", graph, "out/mnist.dynamic.pb", new JsonObject { ["Mode"] = "dynamic" }),
        };
        var run = Run(items, cache: Path.Combine(_root, "cache"));
        Assert.Equal("quantized", (string?)run.Results["0"]["status"]);
        var output = Assert.IsType<Quantize.Kernels.Models.TensorFlow.GraphDefModel>(Quantize.Kernels.Models.Model.Load(Path.Combine(_root, "out/mnist.weights.pb")));
        Assert.Contains(output.Proto.Node, n => n.Op == "Dequantize");
        Assert.Equal("error", (string?)run.Results["1"]["status"]);
        Assert.Equal("QNT006", (string?)run.Results["1"]["code"]);
        Assert.False(File.Exists(Path.Combine(_root, "out/mnist.dynamic.pb")));
    }

    [Fact]
    public void An_older_kernels_reference_than_the_model_needs_is_a_warning_and_the_runtime_refuses_such_a_model()
    {
        string model = Path.Combine(_root, "m.onnx");
        File.WriteAllBytes(model, TestModels.Mlp(5));
        var items = new JsonArray { Item("0", model, "out/m.dynamic.onnx", new JsonObject { ["Mode"] = "dynamic", ["MinimumSize"] = "16" }) };
        string needed = Quantize.Kernels.Runtime.RuntimeVersion.Current.ToNormalizedString();

        var old = Run(items, cache: null, kernelsReference: "0.0.1");
        Assert.Equal("quantized", (string?)old.Results["0"]["status"]);
        string warning = (string?)old.Results["0"]["warning"] ?? "";
        Assert.Contains("0.0.1", warning);
        Assert.Contains(needed, warning);
        Assert.Null(Run(items.DeepClone().AsArray(), cache: null, kernelsReference: needed).Results["0"]["warning"]);
        Assert.Null(Run(items.DeepClone().AsArray(), cache: null, kernelsReference: $"[{needed}, )").Results["0"]["warning"]);

        // The model records what it needs; a model that needs more than this runtime is refused at load, naming both versions.
        var written = Quantize.Kernels.Models.Onnx.OnnxModel.Load(Path.Combine(_root, "out/m.dynamic.onnx"));
        Assert.Equal(needed, written.Proto.MetadataProps.Single(p => p.Key == Quantize.Kernels.Runtime.RuntimeVersion.MetadataKey).Value);
        written.Proto.MetadataProps.Single(p => p.Key == Quantize.Kernels.Runtime.RuntimeVersion.MetadataKey).Value = "99.0.0";
        var error = Assert.Throws<Quantize.Kernels.Runtime.UnsupportedModelException>(() => Quantize.Kernels.Runtime.ModelSession.Create(written));
        Assert.Contains("99.0.0", error.Message);
        Assert.Contains(needed, error.Message);
    }

    private JsonObject Item(string id, string model, string output, JsonObject metadata, string[]? samples = null) => new()
    {
        ["id"] = id,
        ["model"] = model,
        ["output"] = Path.Combine(_root, output),
        ["report"] = Path.Combine(_root, output + ".report.json"),
        ["samples"] = samples is null ? null : new JsonArray(samples.Select(s => (JsonNode?)Path.Combine(_root, s)).ToArray()),
        ["metadata"] = metadata,
    };

    private (int ExitCode, Dictionary<string, JsonObject> Results) Run(JsonArray items, string? cache, string? kernelsReference = null)
    {
        string request = Path.Combine(_root, $"request-{Guid.NewGuid():N}.json");
        File.WriteAllText(request, new JsonObject
        {
            ["useCache"] = cache is not null, ["cacheDirectory"] = cache, ["maxParallel"] = 2, ["kernelsReference"] = kernelsReference, ["items"] = items,
        }.ToJsonString());
        string tool = typeof(BatchCommandTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ToolAssembly").Value!;
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { "exec", tool, "msbuild-batch", request }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "the tool did not finish within two minutes");
        Assert.Equal("", stderr.Result);
        // Nothing but result lines on stdout.
        const string prefix = "quantize-result: ";
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, line => Assert.StartsWith(prefix, line));
        var results = lines.Select(line => JsonNode.Parse(line[prefix.Length..])!.AsObject()).ToDictionary(r => (string)r["id"]!);
        Assert.Equal(items.Count, results.Count);
        return (process.ExitCode, results);
    }
}
