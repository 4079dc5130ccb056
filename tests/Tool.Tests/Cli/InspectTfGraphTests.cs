using System.Text.Json;

namespace Quantize.Tool.Tests.Cli;

/// <summary><c>inspect --json</c> on the TensorFlow frozen graphs agrees with what tf-graphs/README.md states about them.</summary>
public class InspectTfGraphTests
{
    public static TheoryData<string> AllGraphs() => TfGraphsReadme.AllGraphs();

    public static TheoryData<string> DetailedGraphs() => TfGraphsReadme.DetailedGraphs();

    public static TheoryData<string> OpTestGraphs() => TfGraphsReadme.OpTestGraphs();

    [Theory]
    [MemberData(nameof(AllGraphs))]
    public void Every_graph_inspects_as_graphdef_in_text_and_json(string file)
    {
        string path = TfGraphsReadme.PathOf(file);
        var json = CliRun.InspectJson(path);
        Assert.Equal("graphdef", json.GetProperty("format").GetString());
        Assert.True(json.GetProperty("nodeCount").GetInt32() > 0);

        var text = CliRun.Of("inspect", path);
        Assert.Equal(0, text.ExitCode);
        Assert.Equal("", text.Stderr);
        Assert.Contains("Op types used: ", text.Stdout);
    }

    [Theory]
    [MemberData(nameof(DetailedGraphs))]
    public void Summary_matches_the_readme_details(string file)
    {
        var facts = TfGraphsReadme.Details(file);
        var json = CliRun.InspectJson(TfGraphsReadme.PathOf(file));

        Assert.Equal(facts.Nodes, json.GetProperty("nodeCount").GetInt32());
        Assert.Equal(
            facts.Ops.OrderBy(p => p.Key, StringComparer.Ordinal),
            json.GetProperty("ops").EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.GetInt32())).OrderBy(p => p.Key, StringComparer.Ordinal));

        var inputs = json.GetProperty("inputs").EnumerateArray().ToList();
        Assert.Equal(facts.Placeholders.Select(p => p.Name), inputs.Select(i => i.GetProperty("name").GetString()));
        Assert.Equal(facts.Placeholders.Select(p => TfGraphsReadme.Dtype(p.Dtype)), inputs.Select(i => i.GetProperty("dtype").GetString()));
        Assert.Equal(facts.Placeholders.Select(p => ReadmeShape(p.Shape)), inputs.Select(i => ReportShape(i.GetProperty("shape"))));

        var outputs = json.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()!).ToList();
        Assert.Equal(facts.SinkCount, outputs.Count);
        Assert.Subset(outputs.ToHashSet(), facts.ListedSinks.ToHashSet());
        Assert.Equal(outputs.Count, outputs.Distinct().Count());

        var payload = json.GetProperty("parametersByDtype").EnumerateObject()
            .ToDictionary(p => p.Name, p => (p.Value.GetProperty("tensors").GetInt32(), p.Value.GetProperty("elements").GetInt64()));
        Assert.Equal(
            facts.ConstPayload.Select(p => KeyValuePair.Create(TfGraphsReadme.Dtype(p.Key), p.Value)).OrderBy(p => p.Key, StringComparer.Ordinal),
            payload.OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    [Fact]
    public void The_readme_covers_every_graph()
    {
        var all = TfGraphsReadme.AllGraphs().Select(row => row.Data).ToHashSet();
        var topLevel = all.Where(f => !f.Contains('/')).ToHashSet();
        Assert.NotEmpty(topLevel);
        Assert.Equal(topLevel.Order(), TfGraphsReadme.DetailedGraphs().Select(row => row.Data).Order());
        Assert.Equal(topLevel.Order(), TfGraphsReadme.Fetches().Keys.Order());
        Assert.Equal(all.Except(topLevel).Order(), TfGraphsReadme.OpTestIndex().Keys.Order());
    }

    [Fact]
    public void Fetch_nodes_are_outputs_with_the_readme_dtype()
    {
        var fetches = TfGraphsReadme.Fetches();
        Assert.NotEmpty(fetches);
        foreach (var (file, (name, dtype)) in fetches)
        {
            var outputs = CliRun.InspectJson(TfGraphsReadme.PathOf(file)).GetProperty("outputs").EnumerateArray()
                .ToDictionary(o => o.GetProperty("name").GetString()!, o => o.GetProperty("dtype").GetString());
            Assert.True(outputs.ContainsKey(name), $"{file}: '{name}' is not among the outputs {string.Join(", ", outputs.Keys)}");
            Assert.Equal(TfGraphsReadme.Dtype(dtype), outputs[name]);
        }
    }

    [Theory]
    [MemberData(nameof(OpTestGraphs))]
    public void Op_test_graph_has_the_readme_op_types(string file)
    {
        var expected = TfGraphsReadme.OpTestIndex()[file];
        var json = CliRun.InspectJson(TfGraphsReadme.PathOf(file));
        Assert.Equal(expected.Order(StringComparer.Ordinal), json.GetProperty("ops").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Quantized_graph_reports_quint8_weights_and_eightbit_ops()
    {
        var json = CliRun.InspectJson(TfGraphsReadme.PathOf("utensor_quant_mnist.pb"));
        var quantized = json.GetProperty("quantized");
        // README: "quint8: 3 tensors"; QuantizeV2/QuantizedMatMul/Requantize/Dequantize/QuantizedRelu.
        Assert.Equal(3, quantized.GetProperty("tensors").GetInt32());
        Assert.Equal(
            ["Dequantize", "QuantizeV2", "QuantizedMatMul", "QuantizedRelu", "RequantizationRange", "Requantize"],
            quantized.GetProperty("ops").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, json.GetProperty("controlEdges").GetInt32());
    }

    [Fact]
    public void Control_edges_of_the_uncleaned_cnn()
    {
        // README: "112 control edges" in utensor_test_cnn_quant.pb.
        var json = CliRun.InspectJson(TfGraphsReadme.PathOf("utensor_test_cnn_quant.pb"));
        Assert.Equal(112, json.GetProperty("controlEdges").GetInt32());
    }

    /// <summary>README shapes ("[-1, 784]", "[]", unknown) as the report writes dims: "?" for -1.</summary>
    private static string? ReadmeShape(string? shape) =>
        shape is null ? null : string.Join(",", shape.Trim('[', ']').Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(d => d == "-1" ? "?" : d));

    private static string? ReportShape(JsonElement shape) =>
        shape.ValueKind == JsonValueKind.Null ? null
        : string.Join(",", shape.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number ? d.GetInt64().ToString() : d.GetString()));
}
