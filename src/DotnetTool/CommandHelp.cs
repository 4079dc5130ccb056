using System.CommandLine;
using System.Runtime.CompilerServices;

namespace Quantize.Tool;

/// <summary>What <c>--help</c> prints after the standard usage: the command's examples, then the exit codes (at every level).</summary>
internal static class CommandHelp
{
    public const string ExitCodes = """
        Exit codes:
          0  success
          1  failure (including an accuracy target not met)
          2  usage error (unknown option, missing argument, bad option value, wrong mode for the model)
          3  the model file is missing, unreadable or invalid
        """;

    private static readonly ConditionalWeakTable<Command, string[]> Examples = new();

    /// <summary>Sets the examples <paramref name="command"/>'s help shows (one command line each).</summary>
    public static T WithExamples<T>(this T command, params string[] examples) where T : Command
    {
        Examples.AddOrUpdate(command, examples);
        return command;
    }

    /// <summary>The notes for <paramref name="command"/>: its examples (or, without any, its parent's), then the exit codes.</summary>
    public static string Notes(Command command)
    {
        string[]? examples = null;
        for (var c = command; c is not null && !Examples.TryGetValue(c, out examples); c = c.Parents.OfType<Command>().FirstOrDefault()) { }
        var text = new System.Text.StringBuilder();
        if (examples is { Length: > 0 })
        {
            text.Append("Examples:\n");
            foreach (string example in examples) text.Append("  ").Append(example).Append('\n');
            text.Append('\n');
        }
        return text.Append(ExitCodes).Append('\n').ToString();
    }
}
