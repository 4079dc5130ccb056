using System.Text;
using System.Text.RegularExpressions;
using Quantize.Core.Quantization;
using Quantize.Tests;

namespace Quantize.Tool.Tests.Cli;

/// <summary>The README's "Using the tool" section stays true: its options table is OptionSpec.All; its JSON fields are parsed for the end-to-end test.</summary>
public partial class ReadmeTests
{
    private const string TableMarker = "<!-- options table: generated from OptionSpec.All (tests/Tool.Tests/Cli/ReadmeTests.cs checks it) -->";

    /// <summary>The options table as OptionSpec.All defines it (pipes escaped for Markdown tables).</summary>
    public static string OptionsTable()
    {
        var table = new StringBuilder();
        table.Append("| option | MSBuild metadata | values | meaning |\n|---|---|---|---|\n");
        foreach (var spec in OptionSpec.All)
            table.Append($"| `--{spec.Name}` | `{spec.Metadata}` | `{Escape(spec.Values)}` | {Escape(spec.Description)} |\n");
        return table.ToString();
    }

    [Fact]
    public void The_options_table_is_OptionSpec_All()
    {
        string section = Section();
        int start = section.IndexOf(TableMarker, StringComparison.Ordinal);
        Assert.True(start >= 0, "The README's 'Using the tool' section has lost the options table marker.");
        start += TableMarker.Length + 1;
        int end = section.IndexOf("\n\n", start, StringComparison.Ordinal);
        string actual = section[start..(end + 1)];
        Assert.True(actual == OptionsTable(), $"The README's options table differs from OptionSpec.All; replace it with:\n{OptionsTable()}");
    }

    [Fact]
    public void Every_command_is_documented_with_json_fields()
    {
        var fields = DocumentedJsonFields();
        Assert.Equal(new[] { "bench", "compare", "inspect", "quantize", "run" }, fields.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.All(fields.Values, f => Assert.True(f.Length >= 5));
        Assert.Contains("accuracy.outputs[].sqnrDb", fields["compare"]);
    }

    /// <summary>The fields the README's JSON table lists per command: paths such as <c>accuracy.outputs[].meanCosine</c>.</summary>
    public static Dictionary<string, string[]> DocumentedJsonFields()
    {
        string section = Section();
        int start = section.IndexOf("| command | `--json` fields |", StringComparison.Ordinal);
        Assert.True(start >= 0, "The README's 'Using the tool' section has lost its JSON fields table.");
        var result = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (string line in section[start..].Split('\n').Skip(2).TakeWhile(l => l.StartsWith('|')))
        {
            string[] cells = line.Split(" | ");
            string command = cells[0].TrimStart('|').Trim();
            result[command] = Code().Matches(cells[1]).Select(m => m.Groups[1].Value).Where(t => FieldPath().IsMatch(t)).ToArray();
        }
        return result;
    }

    private static string Section()
    {
        string readme = File.ReadAllText(Path.Combine(SharedData.RepositoryRoot, "README.md")).ReplaceLineEndings("\n");
        int start = readme.IndexOf("\n## Using the tool\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no '## Using the tool' section.");
        int end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return readme[start..(end < 0 ? readme.Length : end + 1)];
    }

    private static string Escape(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Code();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*(\[\])?(\.[A-Za-z][A-Za-z0-9]*(\[\])?)*$")]
    private static partial Regex FieldPath();
}
