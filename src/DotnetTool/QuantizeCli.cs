using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Reflection;
using Quantize.Core.Inspection;
using Quantize.Kernels.Models;

namespace Quantize.Tool;

/// <summary>
/// The <c>dotnet-quantize</c> command line, callable in-process: it writes only to the writers it is
/// given and returns the exit code.
/// </summary>
public static class QuantizeCli
{
    /// <summary>The command ran and succeeded.</summary>
    public const int Success = 0;

    /// <summary>An unexpected failure (a bug, or an I/O error while writing the output).</summary>
    public const int Failure = 1;

    /// <summary>The command line is wrong: an unknown option, a missing argument.</summary>
    public const int UsageError = 2;

    /// <summary>The model file is missing, unreadable or invalid.</summary>
    public const int InvalidModel = 3;

    /// <summary>The root command's examples (each command lists its own in its help).</summary>
    private static readonly string[] RootExamples =
    [
        "dotnet quantize encoder.onnx -o encoder.int8.onnx --mode dynamic --data calibration/",
        "dotnet quantize resnet.onnx --mode static --data calibration/ --report report.json",
        "dotnet quantize encoder.onnx --mode int4 --int4-block-size 16 --data calibration/ --min-cosine 0.98",
        "dotnet quantize inspect model.onnx",
        "dotnet quantize compare encoder.onnx encoder.int8.onnx --data calibration/ --layers",
        "dotnet quantize run resnet.int8.onnx --input data=image.npy --labels labels.txt --top 5",
        "dotnet quantize bench encoder.int8.onnx --baseline encoder.onnx --threads 2",
    ];

    /// <summary>Parses <paramref name="args"/>, runs the command, and returns its exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);

        var verbose = new Option<bool>("--verbose")
        {
            Description = "Show the stack trace of errors.",
            Recursive = true,
        };
        var root = new RootCommand("Quantize.Build: build-time quantization of ONNX models and TensorFlow frozen graphs. "
            + "With a MODEL, quantizes it (see the options); or run one of the commands.");
        root.Options.Add(verbose);
        root.WithExamples(RootExamples);
        ToolCommands.Add(root, stdout, stderr);
        QuantizeCommand.Add(root, stdout, stderr);
        root.Subcommands.Add(InspectCommand(stdout));
        root.Subcommands.Add(BenchCommand(stdout));
        root.Subcommands.Add(BatchCommand.Create(stdout));
        foreach (var option in root.Options)
        {
            if (option is HelpOption { Action: HelpAction help }) option.Action = new HelpWithNotes(help);
            if (option is VersionOption) option.Action = new PrintVersion();
        }

        // No response files: an argument such as "@model.onnx" is a path, not a file of arguments.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Errors.Count > 0 && parsed.Action is not HelpWithNotes)
        {
            stderr.WriteLine($"error: {OneLine(parsed.Errors[0].Message)} Run 'dotnet-quantize --help' for usage.");
            return UsageError;
        }

        bool showStack = parsed.GetValue(verbose);
        try
        {
            return parsed.Invoke(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                EnableDefaultExceptionHandler = false,
            });
        }
        catch (InvalidModelException e)
        {
            Report(stderr, e, showStack);
            return InvalidModel;
        }
        catch (Kernels.Runtime.UnsupportedModelException e)
        {
            Report(stderr, e, showStack);
            return InvalidModel;
        }
        catch (UsageException e)
        {
            Report(stderr, e, showStack);
            return UsageError;
        }
        catch (Exception e)
        {
            Report(stderr, e, showStack);
            return Failure;
        }
    }

    private static Command InspectCommand(TextWriter stdout)
    {
        var model = new Argument<string>("MODEL")
        {
            Description = "The model: an ONNX model (.onnx) or a TensorFlow frozen GraphDef (.pb). The format is detected from the content.",
        };
        var json = new Option<bool>("--json")
        {
            Description = "Print one JSON document instead of text (keys: see docs/inspect.md).",
        };
        var inspect = new Command("inspect", "Summarize a model: inputs, outputs, op types, weights, and what is already quantized.")
        {
            model,
            json,
        };
        inspect.WithExamples("dotnet quantize inspect model.onnx", "dotnet quantize inspect frozen_graph.pb --json > summary.json");
        inspect.SetAction(parsed =>
        {
            var summary = ModelSummary.Create(Model.Load(parsed.GetValue(model)!));
            stdout.Write(parsed.GetValue(json) ? summary.ToJson() + "\n" : summary.ToText());
            stdout.Flush();
            return Success;
        });
        return inspect;
    }

    private static Command BenchCommand(TextWriter stdout) => Bench.Create(stdout);

    /// <summary>One line on stderr (the message names the file), then the stack trace if asked for.</summary>
    private static void Report(TextWriter stderr, Exception e, bool showStack)
    {
        string message = e is InvalidModelException or Kernels.Runtime.UnsupportedModelException or FileNotFoundException or DirectoryNotFoundException
            or UsageException or InvalidDataException ? e.Message : $"{e.GetType().Name}: {e.Message}";
        stderr.WriteLine($"error: {OneLine(message)}");
        if (showStack) stderr.WriteLine(e.ToString());
    }

    internal static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    /// <summary>The standard help, then examples and exit codes.</summary>
    private sealed class HelpWithNotes(HelpAction help) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            help.Invoke(parseResult);
            parseResult.InvocationConfiguration.Output.Write(CommandHelp.Notes(parseResult.CommandResult.Command));
            return Success;
        }
    }

    /// <summary>This tool's version, not the host's (in tests the entry assembly is the test runner).</summary>
    private sealed class PrintVersion : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var assembly = typeof(QuantizeCli).Assembly;
            string version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                ?? assembly.GetName().Version?.ToString() ?? "unknown";
            parseResult.InvocationConfiguration.Output.WriteLine(version);
            return Success;
        }
    }
}
