using System.Text.RegularExpressions;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>
/// The facts that shared/tf-graphs/README.md states about each graph (made by an independent
/// wire-format walk), parsed so tests can compare the report with them.
/// </summary>
internal static partial class TfGraphsReadme
{
    public const string Folder = "tf-graphs";

    /// <summary>What the "Per-graph details" section says about one top-level graph.</summary>
    public sealed record GraphFacts(
        int Nodes,
        IReadOnlyList<(string Name, string Dtype, string? Shape)> Placeholders,
        IReadOnlyList<string> ListedSinks,
        int SinkCount,
        IReadOnlyDictionary<string, (int Tensors, long Elements)> ConstPayload,
        IReadOnlyDictionary<string, int> Ops);

    private static readonly Lazy<string[]> Lines = new(() =>
        File.ReadAllLines(Path.Combine(SharedData.Require(Folder), "README.md")));

    /// <summary>Every .pb under tf-graphs, relative to it, for theory data.</summary>
    public static TheoryData<string> AllGraphs()
    {
        var data = new TheoryData<string>();
        if (!SharedData.Exists(Folder)) return ["(tf-graphs missing)"];
        string root = Path.Combine(SharedData.Root!, Folder);
        foreach (string file in Directory.GetFiles(root, "*.pb", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(root, file).Replace('\\', '/'));
        return data;
    }

    /// <summary>The top-level graphs that have a "Per-graph details" section.</summary>
    public static TheoryData<string> DetailedGraphs()
    {
        if (!SharedData.Exists(Folder)) return ["(tf-graphs missing)"];
        var data = new TheoryData<string>();
        foreach (string line in Lines.Value)
        {
            var match = DetailsHeading().Match(line);
            if (match.Success) data.Add(match.Groups[1].Value);
        }
        return data;
    }

    /// <summary>The op-test graphs of the op-test index table, e.g. <c>utensor-op-tests/conv/test_quant_conv.pb</c>.</summary>
    public static TheoryData<string> OpTestGraphs()
    {
        if (!SharedData.Exists(Folder)) return ["(tf-graphs missing)"];
        var data = new TheoryData<string>();
        foreach (string file in OpTestIndex().Keys.Order(StringComparer.Ordinal)) data.Add(file);
        return data;
    }

    /// <summary>The full path of a graph; fails under CI, skips elsewhere, when the data is missing.</summary>
    public static string PathOf(string relative) =>
        relative.StartsWith('(') ? SharedData.Require(Folder) + "/missing" : SharedData.Require($"{Folder}/{relative}");

    public static GraphFacts Details(string file)
    {
        var lines = Lines.Value;
        int start = Array.FindIndex(lines, l => l == $"#### `{file}`");
        Assert.True(start >= 0, $"README has no section for {file}");
        var section = lines.Skip(start + 1).TakeWhile(l => !l.StartsWith("#", StringComparison.Ordinal)).ToList();
        string Item(string label) =>
            section.Single(l => l.StartsWith($"- {label}", StringComparison.Ordinal))[(label.Length + 2)..].TrimStart(':', ' ');

        int nodes = int.Parse(NodesValue().Match(Item("nodes")).Groups[1].Value);

        var placeholders = PlaceholderEntry().Matches(Item("placeholders"))
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value == "unknown" ? null : m.Groups[3].Value))
            .ToList();

        string sinks = Item("sink nodes (not consumed by any node)");
        var total = SinkTotal().Match(sinks);
        if (total.Success) sinks = sinks[..total.Index];
        var listed = sinks.Split(", ", StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()).ToList();
        int sinkCount = total.Success ? int.Parse(total.Groups[1].Value) : listed.Count;

        var payload = Item("Const payload").Split(", ")
            .Select(e => PayloadEntry().Match(e))
            .ToDictionary(m => m.Groups[1].Value, m => (int.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value)));

        var ops = Item("op histogram").Split(", ")
            .Select(e => e.Split('×'))
            .ToDictionary(p => p[0], p => int.Parse(p[1]));

        return new GraphFacts(nodes, placeholders, listed, sinkCount, payload, ops);
    }

    /// <summary>The fetch column of the "Inputs, outputs and golden checks" table: graph file → (output name, dtype).</summary>
    public static IReadOnlyDictionary<string, (string Name, string Dtype)> Fetches()
    {
        var fetches = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (string line in Lines.Value)
        {
            var match = FetchRow().Match(line);
            if (match.Success) fetches[match.Groups[1].Value] = (match.Groups[2].Value, match.Groups[3].Value);
        }
        return fetches;
    }

    /// <summary>The op-test index table: graph path → its set of op types.</summary>
    public static IReadOnlyDictionary<string, IReadOnlySet<string>> OpTestIndex()
    {
        var index = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
        foreach (string line in Lines.Value)
        {
            string[] cells = line.Split('|');
            if (cells.Length < 6 || !cells[2].Contains(".pb`", StringComparison.Ordinal)) continue;
            string dir = cells[1].Trim();
            foreach (string cell in new[] { cells[2], cells[3] })
            {
                foreach (Match graph in GraphWithOps().Matches(cell))
                {
                    var ops = graph.Groups[2].Value.Split(", ").ToHashSet(StringComparer.Ordinal);
                    index[$"utensor-op-tests/{dir}/{graph.Groups[1].Value}"] = ops;
                }
            }
        }
        return index;
    }

    /// <summary>The README's TensorFlow dtype names in the report's names.</summary>
    public static string Dtype(string readmeName) => readmeName switch
    {
        "float" => "float32",
        "double" => "float64",
        _ => readmeName,
    };

    [GeneratedRegex(@"^#### `([^`]+\.pb)`$")]
    private static partial Regex DetailsHeading();

    [GeneratedRegex(@"^(\d+);")]
    private static partial Regex NodesValue();

    [GeneratedRegex(@"(\S+) \((\w+), shape (unknown|\[[^\]]*\])\)")]
    private static partial Regex PlaceholderEntry();

    [GeneratedRegex(@"\s*…\s*\((\d+) total\)\s*$")]
    private static partial Regex SinkTotal();

    [GeneratedRegex(@"^(\w+): (\d+) tensors / (\d+) elems$")]
    private static partial Regex PayloadEntry();

    [GeneratedRegex(@"^\| `([^`]+\.pb)` \| [^|]* \| `([^`]+)` (\w+)")]
    private static partial Regex FetchRow();

    [GeneratedRegex(@"`([^`]+\.pb)` \(([^)]*)\)")]
    private static partial Regex GraphWithOps();
}
