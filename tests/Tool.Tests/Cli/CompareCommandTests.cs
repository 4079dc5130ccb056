using System.Text.Json;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>compare</c>: the metrics equal those computed in float64 from ONNX Runtime's outputs of both models.</summary>
public sealed class CompareCommandTests : IDisposable
{
    private readonly ToolTestModels _models = new();

    public void Dispose() => _models.Dispose();

    private (string Float, string Quantized, string Data) Quantized()
    {
        string model = _models.WriteClassifier(), data = _models.WriteSamples(3);
        string quantized = _models.Path("classifier.int8.onnx");
        var run = CliRun.Of(model, "-o", quantized, "--mode", "dynamic", "--quiet");
        Assert.True(run.ExitCode == 0, run.Stderr);
        return (model, quantized, data);
    }

    [Fact]
    public void Json_metrics_match_ones_computed_from_onnx_runtime()
    {
        var (model, quantized, data) = Quantized();
        var run = CliRun.Of("compare", model, quantized, "--data", data, "--json", "--threads", "1");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal(model, root.GetProperty("float").GetString());
        Assert.Equal(quantized, root.GetProperty("quantized").GetString());
        Assert.Equal(data, root.GetProperty("data").GetString());
        Assert.True(root.GetProperty("met").GetBoolean());
        var accuracy = root.GetProperty("accuracy");
        Assert.Equal(3, accuracy.GetProperty("samples").GetInt32());
        Assert.False(accuracy.GetProperty("generatedInputs").GetBoolean());
        var output = Assert.Single(accuracy.GetProperty("outputs").EnumerateArray());
        Assert.Equal(ToolTestModels.Output, output.GetProperty("name").GetString());

        // The oracle: both models run by ONNX Runtime, metrics in float64.
        double cosineSum = 0, minCosine = 1, maxAbs = 0, signal = 0, noise = 0;
        int rows = 0, agreeing = 0;
        foreach (var x in ToolTestModels.ReadSamples(data))
        {
            var (r, shape) = ToolTestModels.RunOrt(model, x);
            var (q, _) = ToolTestModels.RunOrt(quantized, x);
            double dot = 0, rr = 0, qq = 0;
            for (int i = 0; i < r.Length; i++)
            {
                dot += (double)r[i] * q[i];
                rr += (double)r[i] * r[i];
                qq += (double)q[i] * q[i];
                noise += ((double)r[i] - q[i]) * ((double)r[i] - q[i]);
                maxAbs = Math.Max(maxAbs, Math.Abs((double)r[i] - q[i]));
            }
            double cosine = dot / Math.Sqrt(rr * qq);
            cosineSum += cosine;
            minCosine = Math.Min(minCosine, cosine);
            signal += rr;
            int classes = (int)shape[1];
            for (int row = 0; row < shape[0]; row++, rows++)
            {
                var rs = r.AsSpan(row * classes, classes).ToArray();
                var qs = q.AsSpan(row * classes, classes).ToArray();
                if (Array.IndexOf(rs, rs.Max()) == Array.IndexOf(qs, qs.Max())) agreeing++;
            }
        }
        Assert.Equal(cosineSum / 3, output.GetProperty("meanCosine").GetDouble(), 4);
        Assert.Equal(minCosine, output.GetProperty("minCosine").GetDouble(), 4);
        Assert.Equal(maxAbs, output.GetProperty("maxAbsError").GetDouble(), 0.01 * maxAbs + 1e-4);
        Assert.Equal(10 * Math.Log10(signal / noise), output.GetProperty("sqnrDb").GetDouble(), 0.1);
        Assert.Equal((double)agreeing / rows, output.GetProperty("top1Agreement").GetDouble(), 6);
        Assert.Equal(3, output.GetProperty("samples").GetInt32());
        Assert.False(accuracy.TryGetProperty("layers", out _));
    }

    [Fact]
    public void Layers_are_the_shared_intermediate_tensors_worst_SQNR_first()
    {
        var (model, quantized, data) = Quantized();
        var run = CliRun.Of("compare", model, quantized, "--data", data, "--layers", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var layers = json.RootElement.GetProperty("accuracy").GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(new[] { "H", "R" }, layers.Select(l => l.GetProperty("name").GetString()!).Order().ToArray());
        var sqnr = layers.Select(l => l.GetProperty("sqnrDb").GetDouble()).ToList();
        Assert.Equal(sqnr.Order().ToList(), sqnr);

        var text = CliRun.Of("compare", model, quantized, "--data", data, "--layers");
        Assert.Contains("Layers: 2 intermediate tensors in both models, worst SQNR first:", text.Stdout);
    }

    [Fact]
    public void Without_data_the_inputs_are_generated_and_the_output_says_so()
    {
        var (model, quantized, _) = Quantized();
        var text = CliRun.Of("compare", model, quantized);
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("Inputs: one set generated from the declared input types", text.Stdout);
        using var json = JsonDocument.Parse(CliRun.Of("compare", model, quantized, "--json").Stdout);
        Assert.True(json.RootElement.GetProperty("accuracy").GetProperty("generatedInputs").GetBoolean());
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("data").ValueKind);
    }

    [Fact]
    public void An_unmet_minimum_cosine_exits_1_with_one_line()
    {
        var (model, quantized, data) = Quantized();
        var run = CliRun.Of("compare", model, quantized, "--data", data, "--min-cosine", "1.5", "--json");
        Assert.Equal(1, run.ExitCode);
        using var json = JsonDocument.Parse(run.Stdout);
        Assert.False(json.RootElement.GetProperty("met").GetBoolean());
        Assert.StartsWith("error: the accuracy target is not met", Assert.Single(run.StderrLines));
    }

    [Fact]
    public void A_missing_model_exits_3_with_one_line()
    {
        string model = _models.WriteClassifier();
        var run = CliRun.Of("compare", model, _models.Path("missing.onnx"));
        Assert.Equal(3, run.ExitCode);
        Assert.StartsWith($"error: {_models.Path("missing.onnx")}: ", Assert.Single(run.StderrLines));
    }
}
