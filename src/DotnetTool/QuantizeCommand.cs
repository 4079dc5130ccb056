using System.CommandLine;
using Quantize.Core.Quantization;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Tool;

/// <summary>A command line that is wrong in a way only known after parsing (a bad option value, a mode the model cannot take).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// <c>dotnet quantize MODEL [-o OUT] [--mode ...]</c>: the root command quantizes. Its options come from
/// <see cref="OptionSpec.All"/>, the definitions the MSBuild task's item metadata use too.
/// </summary>
internal static class QuantizeCommand
{
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        var model = new Argument<string?>("MODEL")
        {
            Description = "The float ONNX model to quantize.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var output = new Option<string?>("--output", "-o") { Description = "Where to write the quantized model (default: MODEL with .int8.onnx or .int4.onnx)." };
        var data = new Option<string?>("--data")
        {
            Description = "Calibration and evaluation data: a folder with one sub-folder per sample, each holding NAME.pb (ONNX TensorProto) per input.",
        };
        var evaluation = new Option<string?>("--eval-data") { Description = "Separate evaluation data (same layout); default: --data." };
        var report = new Option<string?>("--report") { Description = "Also write the report as JSON to this file." };
        var json = new Option<bool>("--json") { Description = "Print the report as one JSON document instead of text." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing but errors." };
        var specs = OptionSpec.All.Select(spec => (spec, option: new Option<string?>("--" + spec.Name)
        {
            Description = $"{spec.Description} [{spec.Values}]",
            HelpName = spec.Values,
        })).ToList();

        root.Arguments.Add(model);
        foreach (var option in new Option[] { output, data, evaluation, report, json, quiet }) root.Options.Add(option);
        foreach (var (_, option) in specs) root.Options.Add(option);

        root.SetAction(parsed =>
        {
            string? path = parsed.GetValue(model);
            if (path is null) throw new UsageException("no MODEL given. Run 'dotnet-quantize --help' for usage.");
            if (!File.Exists(path) && !Directory.Exists(path) && !path.Contains('.') && !path.Contains(Path.DirectorySeparatorChar) && !path.Contains('/'))
                throw new UsageException($"'{path}' is neither a command ({string.Join(", ", root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}) nor a model file. Run 'dotnet-quantize --help' for usage.");
            var options = new QuantizationOptions();
            foreach (var (spec, option) in specs)
            {
                string? value = parsed.GetValue(option);
                if (value is null) continue;
                try
                {
                    options = spec.Apply(options, value);
                }
                catch (ArgumentException e)
                {
                    throw new UsageException($"--{e.Message}");
                }
            }
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }

            var loaded = Model.Load(path);
            string? dataFolder = parsed.GetValue(data), evaluationFolder = parsed.GetValue(evaluation);
            bool graphDef = loaded is not OnnxModel;
            if (specs.All(p => p.spec.Name != "mode" || parsed.GetValue(p.option) is null))
                options = options with { Mode = loaded is OnnxModel onnxModel ? Quantizer.DefaultMode(onnxModel, hasCalibration: dataFolder is not null) : QuantizationMode.Weights };
            if (graphDef && (options.Mode is not (QuantizationMode.Weights or QuantizationMode.Round) || dataFolder is not null || evaluationFolder is not null))
                throw new UsageException($"{path} is a TensorFlow GraphDef: use --mode weights or --mode round, without --data or --eval-data.");
            if (!graphDef && options.Mode == QuantizationMode.Round)
                throw new UsageException("round mode is for TensorFlow GraphDefs; ONNX models take weights, dynamic, static or int4.");
            if (options.Mode == QuantizationMode.Static && dataFolder is null)
                throw new UsageException("static mode needs calibration data: pass --data DIR (one sub-folder per sample).");

            var inputs = loaded is OnnxModel onnx ? Kernels.Runtime.ModelSession.Create(onnx).Inputs : [];
            SampleSource? calibration = dataFolder is null ? null : SampleFolders.Open(dataFolder, inputs);
            SampleSource? evaluationSamples = evaluationFolder is null ? null : SampleFolders.Open(evaluationFolder, inputs);
            string outputPath = parsed.GetValue(output) ?? DefaultOutput(path, options.Mode, graphDef);
            bool quietly = parsed.GetValue(quiet);
            if (!quietly && !parsed.GetValue(json)) stderr.WriteLine($"Quantizing {path} ({options.Mode.ToString().ToLowerInvariant()})...");

            QuantizationSummary summary;
            using (var progress = new ConsoleProgress(stderr, ConsoleProgress.StyleFor(stderr, quietly)))
                summary = Quantizer.QuantizeFile(path, outputPath, options, calibration, evaluationSamples, progress);
            string? reportPath = parsed.GetValue(report);
            if (reportPath is not null) WriteAtomically(reportPath, summary.ToJson() + "\n");
            if (parsed.GetValue(json)) stdout.WriteLine(summary.ToJson());
            else if (!quietly) stdout.Write(summary.ToText());
            stdout.Flush();
            if (summary.Result.TargetMet == false)
            {
                stderr.WriteLine($"error: the accuracy target (cosine >= {options.MinimumCosine}) is not met with up to half of the quantized layers kept float; the model was written anyway (see the report).");
                return QuantizeCli.Failure;
            }
            return QuantizeCli.Success;
        });
    }

    private static string DefaultOutput(string path, QuantizationMode mode, bool graphDef)
    {
        string folder = Path.GetDirectoryName(path) ?? "";
        if (graphDef)
            return Path.Combine(folder, $"{Path.GetFileNameWithoutExtension(path)}.{mode.ToString().ToLowerInvariant()}.pb");
        return Path.Combine(folder, Path.GetFileNameWithoutExtension(path) + (mode == QuantizationMode.Int4 ? ".int4.onnx" : ".int8.onnx"));
    }

    private static void WriteAtomically(string path, string text)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temporary = full + ".tmp-" + Environment.ProcessId;
        File.WriteAllText(temporary, text);
        File.Move(temporary, full, overwrite: true);
    }
}
