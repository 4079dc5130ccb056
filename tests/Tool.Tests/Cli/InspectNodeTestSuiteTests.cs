using System.Text.Json;
using System.Text.RegularExpressions;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>
/// <c>inspect --json</c> on every model of the ONNX backend test suites agrees with the suite's
/// index.csv, which was made independently (a plain wire-format reader, cross-checked with onnx).
/// </summary>
public partial class InspectNodeTestSuiteTests
{
    public static TheoryData<string> Cases() => NodeTestCases.Data();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Json_matches_the_suite_index(string name)
    {
        string folder = NodeTestCases.Folder(name);
        var row = NodeTestCases.IndexRow(name);
        var json = CliRun.InspectJson(Path.Combine(folder, "model.onnx"));

        Assert.Equal("onnx", json.GetProperty("format").GetString());
        Assert.Equal(OpKeys(row["op_types"]), Keys(json.GetProperty("ops")));
        Assert.Equal(OpKeys(row["subgraph_op_types"]), Keys(json.GetProperty("subgraphOps")));

        var inputs = json.GetProperty("inputs").EnumerateArray().ToList();
        var outputs = json.GetProperty("outputs").EnumerateArray().ToList();
        Assert.Equal(int.Parse(row["n_inputs"]), inputs.Count);
        Assert.Equal(int.Parse(row["n_outputs"]), outputs.Count);
        Assert.Equal(Dtypes(row["input_dtypes"]), inputs.Select(v => v.GetProperty("dtype").GetString()!));
        Assert.Equal(Dtypes(row["output_dtypes"]), outputs.Select(v => v.GetProperty("dtype").GetString()!));

        Assert.Equal(long.Parse(row["ir_version"]), json.GetProperty("irVersion").GetInt64());
        var opsets = json.GetProperty("opsets").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        if (row["opset"].Length > 0)
            Assert.Equal(long.Parse(row["opset"]), opsets["ai.onnx"]);
        else
            Assert.DoesNotContain("ai.onnx", opsets.Keys);
        var others = row["other_opsets"].Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Split('='))
            .ToDictionary(p => p[0], p => long.Parse(p[1]));
        Assert.Equal(others.OrderBy(p => p.Key, StringComparer.Ordinal), opsets.Where(p => p.Key != "ai.onnx").OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    /// <summary>index.csv writes <c>domain:OpType</c> where the report writes <c>domain.OpType</c>.</summary>
    private static SortedSet<string> OpKeys(string cell) =>
        new(cell.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(op => op.Replace(':', '.')), StringComparer.Ordinal);

    private static SortedSet<string> Keys(JsonElement obj) => new(obj.EnumerateObject().Select(p => p.Name), StringComparer.Ordinal);

    /// <summary>index.csv's ONNX enum names (FLOAT, INT64, seq(FLOAT)...) in the report's lower-case names.</summary>
    private static List<string> Dtypes(string cell) => cell
        .Split(';', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => EnumName().Replace(d, m => m.Value switch
        {
            "FLOAT" => "float32",
            "DOUBLE" => "float64",
            _ => m.Value.ToLowerInvariant(),
        }))
        .ToList();

    [GeneratedRegex("[A-Z][A-Z0-9]*")]
    private static partial Regex EnumName();
}
