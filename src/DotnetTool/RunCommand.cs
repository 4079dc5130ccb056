using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool;

/// <summary>
/// <c>dotnet quantize run MODEL</c>: runs a model once on our runtime (whatever <see cref="ModelSession"/> loads) and shows
/// each output's shape and, for score vectors, the top classes; <c>--save</c> writes the outputs as <c>.npy</c> files.
/// </summary>
internal static class RunCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Argument<string>("MODEL") { Description = "The model to run (any model the runtime loads)." };
        var input = new Option<string[]>("--input", "-i")
        {
            Description = "An input as NAME=FILE (repeatable): a NumPy .npy file or a serialized ONNX TensorProto (.pb). A model with one input also takes just FILE.",
            HelpName = "NAME=FILE",
            AllowMultipleArgumentsPerToken = false,
        };
        var data = new Option<string?>("--data")
        {
            Description = "Take the inputs from a folder instead (one sample's NAME.pb/NAME.npy files, or the first of a set of samples). "
                + "With neither --input nor --data, inputs are generated from the declared types.",
        };
        var labels = new Option<string?>("--labels") { Description = "A text file with one class label per line, for the top-k of score outputs." };
        var top = new Option<int>("--top") { Description = "How many classes to list for score outputs (default 5).", DefaultValueFactory = _ => 5, HelpName = "K" };
        var save = new Option<string?>("--save") { Description = "Write each output to DIR/<output name>.npy (names made file-safe).", HelpName = "DIR" };
        var threads = new Option<int>("--threads") { Description = "Threads for the kernels (default: all cores).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (fields: see the README)." };
        var command = new Command("run", "Run a model once on Quantize.Kernels' runtime and show its outputs: shape, value range and, for score vectors, the top classes.")
        {
            model, input, data, labels, top, save, threads, json,
        };
        command.WithExamples(
            "dotnet quantize run resnet.int8.onnx --input data=cat.npy --labels imagenet.txt --top 5",
            "dotnet quantize run encoder.onnx --data calibration/s000 --save outputs/",
            "dotnet quantize run model.onnx --json");
        command.SetAction(parsed =>
        {
            string path = parsed.GetValue(model)!;
            string[] given = parsed.GetValue(input) ?? [];
            string? folder = parsed.GetValue(data);
            int k = parsed.GetValue(top);
            if (k < 0) throw new UsageException($"--top {k}: give a count of 0 or more.");
            if (given.Length > 0 && folder is not null) throw new UsageException("give the inputs with --input or with --data, not both.");
            string[]? labelLines = parsed.GetValue(labels) is { } labelFile ? ReadLabels(labelFile) : null;

            using var session = ModelSession.Load(path, new SessionOptions { Threads = Math.Max(1, parsed.GetValue(threads)) });
            var sources = new Dictionary<string, string>(StringComparer.Ordinal);
            IReadOnlyDictionary<string, Tensor> inputs;
            string inputsFrom;
            if (given.Length > 0)
            {
                inputs = ReadInputs(given, session.Inputs, sources);
                inputsFrom = "files";
            }
            else if (folder is not null)
            {
                inputs = InputSets.First(folder, session.Inputs);
                inputsFrom = folder;
            }
            else
            {
                inputs = InputSets.Generate(session.Inputs);
                inputsFrom = "generated";
            }

            IReadOnlyDictionary<string, Tensor> outputs;
            try
            {
                outputs = session.Run(inputs);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }

            string? saveFolder = parsed.GetValue(save);
            var saved = saveFolder is null ? new Dictionary<string, string>() : Save(saveFolder, session.Outputs.Select(o => o.Name).Where(outputs.ContainsKey), outputs, stderr);
            var results = session.Outputs.Where(o => outputs.ContainsKey(o.Name))
                .Select(o => new OutputView(o.Name, outputs[o.Name], OutputView.TopK(outputs[o.Name], k, labelLines), saved.GetValueOrDefault(o.Name))).ToList();

            if (parsed.GetValue(json)) stdout.WriteLine(Json(path, inputsFrom, inputs, sources, results));
            else WriteText(stdout, path, inputsFrom, inputs, sources, results);
            stdout.Flush();
            return QuantizeCli.Success;
        });
        return command;
    }

    private static string[] ReadLabels(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the labels file does not exist.", path);
        return File.ReadAllLines(path).Select(l => l.Trim()).ToArray();
    }

    /// <summary>The <c>--input NAME=FILE</c> values read; every model input must be given once.</summary>
    private static Dictionary<string, Tensor> ReadInputs(string[] given, IReadOnlyList<ValueInfo> declared, Dictionary<string, string> sources)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (string value in given)
        {
            int equals = value.IndexOf('=', StringComparison.Ordinal);
            string name, file;
            // TensorFlow names a tensor 'node:0' as well as 'node'.
            string? named = equals > 0 ? declared.Select(i => i.Name).FirstOrDefault(n => n == value[..equals] || n + ":0" == value[..equals]) : null;
            if (named is not null)
            {
                (name, file) = (named, value[(equals + 1)..]);
            }
            else if (equals > 0 && !File.Exists(value))
            {
                throw new UsageException($"--input {value}: the model has no input '{value[..equals]}'; its inputs are {string.Join(", ", declared.Select(i => i.Name))}.");
            }
            else if (declared.Count == 1)
            {
                (name, file) = (declared[0].Name, value);
            }
            else
            {
                throw new UsageException($"--input {value}: say which input it is, as NAME=FILE; the model's inputs are {string.Join(", ", declared.Select(i => i.Name))}.");
            }
            if (!result.TryAdd(name, TensorFiles.Read(file))) throw new UsageException($"--input: input '{name}' is given twice.");
            sources[name] = file;
        }
        var missing = declared.Where(i => !result.ContainsKey(i.Name)).Select(i => i.Name).ToList();
        if (missing.Count > 0)
            throw new UsageException($"--input: no file for {string.Join(", ", missing.Select(m => $"'{m}'"))}; give every input as NAME=FILE (or use --data DIR).");
        return result;
    }

    /// <summary>Writes each output to <c>folder/NAME.npy</c>; returns the paths by output name.</summary>
    private static Dictionary<string, string> Save(string folder, IEnumerable<string> names, IReadOnlyDictionary<string, Tensor> outputs, TextWriter stderr)
    {
        Directory.CreateDirectory(folder);
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string name in names)
        {
            string stem = FileSafe(name);
            for (int n = 2; !used.Add(stem); n++) stem = $"{FileSafe(name)}_{n}";
            string path = Path.Combine(folder, stem + ".npy");
            try
            {
                TensorFiles.WriteNpy(path, outputs[name]);
                paths[name] = path;
            }
            catch (NotSupportedException e)
            {
                stderr.WriteLine($"warning: output '{name}' is not saved: {e.Message}");
            }
        }
        return paths;
    }

    /// <summary>An output name as a file name: letters, digits, '.', '-' and '_' kept, anything else '_'.</summary>
    internal static string FileSafe(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray();
        string safe = new string(chars).Trim('.');
        return safe.Length == 0 ? "output" : safe;
    }

    private static void WriteText(TextWriter stdout, string path, string inputsFrom, IReadOnlyDictionary<string, Tensor> inputs,
        Dictionary<string, string> sources, List<OutputView> results)
    {
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine($"Model: {path}");
        if (inputsFrom == "generated") stdout.WriteLine($"Inputs: {InputSets.GeneratedDescription}");
        else if (inputsFrom != "files") stdout.WriteLine($"Inputs: from {inputsFrom}");
        foreach (var (name, tensor) in inputs)
            stdout.WriteLine($"Input {name}: {tensor}{(sources.TryGetValue(name, out var file) ? " from " + file : "")}");
        foreach (var output in results)
        {
            string range = output.Statistics is { } s ? string.Create(inv, $", min {s.Min:G6}, max {s.Max:G6}, mean {s.Mean:G6}") : "";
            stdout.WriteLine($"Output {output.Name}: {output.Tensor}{range}");
            if (output.Top is { } rows)
            {
                for (int row = 0; row < rows.Count; row++)
                {
                    stdout.WriteLine(rows.Count == 1 ? $"  top {rows[row].Count}:" : string.Create(inv, $"  row {row}, top {rows[row].Count}:"));
                    foreach (var c in rows[row])
                        stdout.WriteLine(string.Create(inv, $"    {c.Score,12:G6}  [{c.Index}]{(c.Label is null ? "" : " " + c.Label)}"));
                }
            }
            if (output.SavedTo is not null) stdout.WriteLine($"  saved to {output.SavedTo}");
        }
    }

    private static string Json(string path, string inputsFrom, IReadOnlyDictionary<string, Tensor> inputs, Dictionary<string, string> sources, List<OutputView> results) =>
        JsonText.Of(w =>
        {
            w.WriteStartObject();
            w.WriteString("model", path);
            w.WriteBoolean("generatedInputs", inputsFrom == "generated");
            w.WriteStartArray("inputs");
            foreach (var (name, tensor) in inputs)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteString("elementType", tensor.ElementType.DisplayName());
                JsonText.Shape(w, "shape", tensor.Shape);
                w.WriteString("source", sources.GetValueOrDefault(name) ?? (inputsFrom == "generated" ? "generated" : inputsFrom));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("outputs");
            foreach (var output in results) WriteOutput(w, output);
            w.WriteEndArray();
            w.WriteEndObject();
        });

    private static void WriteOutput(Utf8JsonWriter w, OutputView output)
    {
        w.WriteStartObject();
        w.WriteString("name", output.Name);
        w.WriteString("elementType", output.Tensor.ElementType.DisplayName());
        JsonText.Shape(w, "shape", output.Tensor.Shape);
        if (output.Statistics is { } s)
        {
            JsonText.Number(w, "min", s.Min);
            JsonText.Number(w, "max", s.Max);
            JsonText.Number(w, "mean", s.Mean);
        }
        else
        {
            w.WriteNull("min");
            w.WriteNull("max");
            w.WriteNull("mean");
        }
        if (output.Top is { } rows)
        {
            w.WriteStartArray("top");
            foreach (var row in rows)
            {
                w.WriteStartArray();
                foreach (var c in row)
                {
                    w.WriteStartObject();
                    w.WriteNumber("index", c.Index);
                    JsonText.Number(w, "score", c.Score);
                    if (c.Label is null) w.WriteNull("label");
                    else w.WriteString("label", c.Label);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        else
        {
            w.WriteNull("top");
        }
        if (output.SavedTo is null) w.WriteNull("saved");
        else w.WriteString("saved", output.SavedTo);
        w.WriteEndObject();
    }
}
