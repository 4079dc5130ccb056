using System.Text.Json;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>bench</c>: the baseline timed in the same run, batches, and the documented JSON fields.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private readonly ToolTestModels _models = new();

    public void Dispose() => _models.Dispose();

    [Fact]
    public void A_baseline_is_timed_in_the_same_run_and_the_speedup_is_the_ratio_of_medians()
    {
        string model = _models.WriteClassifier(), baseline = _models.WriteClassifier("baseline.onnx");
        var run = CliRun.Of("bench", model, "--baseline", baseline, "--warmup", "1", "--iterations", "3", "--threads", "1", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("batch").GetInt32());
        Assert.Equal("generated", root.GetProperty("inputs").GetString());
        Assert.Equal(3, root.GetProperty("iterations").GetInt32());
        var other = root.GetProperty("baseline");
        Assert.Equal(baseline, other.GetProperty("model").GetString());
        Assert.Equal(new FileInfo(baseline).Length, other.GetProperty("modelBytes").GetInt64());
        Assert.Equal(3, other.GetProperty("iterations").GetInt32());
        // Medians are printed to 0.001 ms and the speedup to 0.001: the speedup lies within what that rounding allows.
        double b = other.GetProperty("medianMilliseconds").GetDouble(), m = root.GetProperty("medianMilliseconds").GetDouble();
        double speedup = root.GetProperty("speedup").GetDouble();
        Assert.InRange(speedup, (b - 0.0005) / (m + 0.0005) - 0.0005, m > 0.0005 ? (b + 0.0005) / (m - 0.0005) + 0.0005 : double.MaxValue);

        var text = CliRun.Of("bench", model, "--baseline", baseline, "--warmup", "0", "--iterations", "2");
        Assert.Contains("Speedup: ", text.Stdout);
        Assert.Contains("(runs interleaved with the model's)", text.Stdout);
    }

    [Fact]
    public void A_batch_repeats_the_inputs_along_the_first_axis()
    {
        string model = _models.WriteClassifier(), data = _models.WriteSamples(1, rows: 2);
        var run = CliRun.Of("bench", model, "--data", Path.Combine(data, "s000"), "--batch", "3", "--warmup", "0", "--iterations", "2", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal(3, root.GetProperty("batch").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("baseline").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("speedup").ValueKind);
        Assert.Equal(3 * root.GetProperty("runsPerSecond").GetDouble(), root.GetProperty("itemsPerSecond").GetDouble(), 0.05);
    }

    [Fact]
    public void A_batch_the_model_cannot_take_is_a_usage_error()
    {
        string model = SharedDataModel();
        var run = CliRun.Of("bench", model, "--batch", "2", "--iterations", "1", "--warmup", "0");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("fixed first dimension", Assert.Single(run.StderrLines));
        Assert.Equal(2, CliRun.Of("bench", model, "--batch", "0").ExitCode);
    }

    /// <summary>An ONNX node test model with a fixed batch (test_abs: x [3, 4, 5]).</summary>
    private static string SharedDataModel() => Path.Combine(Quantize.Tests.SharedData.Require("onnx-node-tests/test_abs"), "model.onnx");
}
