using System.CommandLine;

namespace Quantize.Tool;

/// <summary>The commands that compare and run models (kept apart from QuantizeCli so each lives in its own file).</summary>
internal static class ToolCommands
{
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        root.Subcommands.Add(CompareCommand.Create(stdout, stderr));
        root.Subcommands.Add(RunCommand.Create(stdout, stderr));
    }
}
