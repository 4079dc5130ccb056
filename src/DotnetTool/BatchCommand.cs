using System.CommandLine;
using System.Text.Json.Nodes;
using NuGet.Versioning;
using Quantize.Core.Cache;
using Quantize.Core.Calibration;
using Quantize.Core.Quantization;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool;

/// <summary>
/// <c>dotnet quantize msbuild-batch REQUEST.json</c> (hidden): what the MSBuild task runs. Quantizes every item of the
/// request concurrently (bounded by the cores), through the content-addressed cache, and prints one line per item:
/// <see cref="ResultPrefix"/> and a JSON object (id, status, code, message, sizes, accuracy, what stayed float).
/// The options come as MSBuild metadata (name = value) and are mapped by <see cref="OptionMetadata"/>.
/// </summary>
internal static class BatchCommand
{
    /// <summary>Marks a result line on stdout.</summary>
    public const string ResultPrefix = "quantize-result: ";

    /// <summary>Diagnostic codes, shared with the MSBuild task's documentation (docs/MSBUILD.md).</summary>
    public const string MissingModel = "QNT001", InvalidModel = "QNT002", StaticWithoutData = "QNT003", TargetNotMet = "QNT004",
        BadMetadata = "QNT006", BadCalibration = "QNT007", Failed = "QNT008";

    public static Command Create(TextWriter stdout)
    {
        var request = new Argument<string>("REQUEST") { Description = "The request (JSON) written by the MSBuild task." };
        var command = new Command("msbuild-batch", "Quantize the items of an MSBuild request (used by the Quantize.Build package).") { request };
        command.Hidden = true;
        command.SetAction(parsed =>
        {
            var root = JsonNode.Parse(File.ReadAllText(parsed.GetValue(request)!))!.AsObject();
            // No folder named means the user-level default; useCache false turns the cache off.
            string? cacheFolder = (string?)root["cacheDirectory"];
            var cache = (bool?)root["useCache"] == false ? null
                : new QuantizationCache(string.IsNullOrEmpty(cacheFolder) ? QuantizationCache.DefaultDirectory : cacheFolder);
            var items = root["items"]!.AsArray().Select(i => Item.From(i!.AsObject())).ToList();
            int parallel = (int?)root["maxParallel"] is int p && p > 0 ? p : Environment.ProcessorCount;
            parallel = Math.Max(1, Math.Min(parallel, items.Count));
            int threadsEach = Math.Max(1, Environment.ProcessorCount / parallel);
            var gate = new object();
            bool failed = false;
            Parallel.ForEach(items, new ParallelOptions { MaxDegreeOfParallelism = parallel }, item =>
            {
                var result = Run(item, cache, threadsEach);
                if (OlderKernels((string?)root["kernelsReference"], item, result) is { } warning) result["warning"] = warning;
                lock (gate)
                {
                    failed |= (string?)result["status"] == "error";
                    stdout.WriteLine(ResultPrefix + result.ToJsonString());
                    stdout.Flush();
                }
            });
            return failed ? QuantizeCli.Failure : QuantizeCli.Success;
        });
        return command;
    }

    internal sealed record Item(string Id, string Model, string Output, string Report, string? Calibration, IReadOnlyList<string>? Samples,
        IReadOnlyList<KeyValuePair<string, string>> Metadata)
    {
        public static Item From(JsonObject json) => new(
            (string)json["id"]!, (string)json["model"]!, (string)json["output"]!, (string)json["report"]!,
            (string?)json["calibration"] is { Length: > 0 } folder ? folder : null,
            json["samples"] is JsonArray samples ? samples.Select(s => (string)s!).ToList() : null,
            json["metadata"] is JsonObject metadata ? metadata.Select(p => KeyValuePair.Create(p.Key, (string?)p.Value ?? "")).ToList() : []);
    }

    private static JsonObject Run(Item item, QuantizationCache? cache, int threads)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var options = new QuantizationOptions { Threads = threads };
            try
            {
                options = OptionMetadata.Apply(options, item.Metadata);
            }
            catch (ArgumentException e)
            {
                return Error(item, BadMetadata, e.Message);
            }
            if (!File.Exists(item.Model)) return Error(item, MissingModel, $"{item.Model}: the model file does not exist.");
            bool hasData = item.Calibration is not null || item.Samples is { Count: > 0 };
            if (options.Mode == QuantizationMode.Static && !hasData)
                return Error(item, StaticWithoutData, $"{item.Model}: static mode needs calibration data to choose activation ranges: set the item's Calibration metadata to a folder of samples (or a glob of sample folders).");
            if (item.Calibration is not null && !Directory.Exists(item.Calibration))
                return Error(item, BadCalibration, $"{item.Calibration}: the calibration data folder does not exist.");

            Model loaded;
            try
            {
                loaded = Model.Load(item.Model);
            }
            catch (Exception e) when (e is InvalidModelException or Kernels.Runtime.UnsupportedModelException or IOException)
            {
                return Error(item, InvalidModel, Oneline(e.Message));
            }
            var model = loaded as OnnxModel;
            if (model is null && (options.Mode is not (QuantizationMode.Weights or QuantizationMode.Round) || hasData))
                return Error(item, BadMetadata, $"{item.Model}: is a TensorFlow GraphDef: set the item's Mode to weights or round, without Calibration.");
            if (model is not null && options.Mode == QuantizationMode.Round)
                return Error(item, BadMetadata, $"{item.Model}: round mode is for TensorFlow GraphDefs; ONNX models take weights, dynamic, static or int4.");
            // A key covers the model file's bytes only, so a model with external data files is never cached.
            bool cacheable = cache is not null && (model is null || !model.Graph.Initializer.Any(t => t.ExternalData.Count > 0));
            string? key = null;
            if (cacheable)
            {
                key = QuantizationCacheKey.Compute(item.Model, CalibrationFiles(item), Quantizer.OptionsJson(options), ToolVersion);
                if (cache!.TryGet(key, item.Output, item.Report)) return Finished(item, "cached", item.Report, clock.Elapsed.TotalSeconds);
            }

            SampleSource? samples;
            try
            {
                samples = model is null ? null : Samples(item, model, options);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or InvalidModelException)
            {
                return Error(item, BadCalibration, Oneline(e.Message));
            }
            Delete(item.Output);
            QuantizationSummary summary;
            try
            {
                summary = Quantizer.QuantizeFile(item.Model, item.Output, options, samples);
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
            {
                Delete(item.Output);
                return Error(item, BadCalibration, Oneline(e.Message));
            }
            catch (Exception e) when (e is InvalidModelException or Kernels.Runtime.UnsupportedModelException)
            {
                Delete(item.Output);
                return Error(item, InvalidModel, Oneline(e.Message));
            }
            Kernels.IO.AtomicFile.Write(item.Report, stream => stream.Write(System.Text.Encoding.UTF8.GetBytes(summary.ToJson() + "\n")));
            if (summary.Result.TargetMet == false)
            {
                // No output: the next build tries again (and reports again) instead of finding the target up to date.
                Delete(item.Output);
                var error = Error(item, TargetNotMet,
                    $"{item.Model}: the accuracy target (cosine >= {options.MinimumCosine}) is not met with up to half of the quantized layers kept float (worst output cosine {summary.Result.Accuracy?.WorstMeanCosine:F5}); see the report {item.Report}.");
                error["report"] = item.Report;
                return error;
            }
            if (key is not null) cache!.Put(key, item.Output, item.Report);
            return Finished(item, "quantized", item.Report, clock.Elapsed.TotalSeconds);
        }
        catch (Exception e)
        {
            Delete(item.Output);
            return Error(item, Failed, $"{item.Model}: quantizing failed: {e.GetType().Name}: {Oneline(e.Message)}");
        }
    }

    /// <summary>A success line from the report (the one written now, or the cached one).</summary>
    private static JsonObject Finished(Item item, string status, string reportPath, double seconds)
    {
        var result = new JsonObject { ["id"] = item.Id, ["status"] = status, ["output"] = item.Output, ["report"] = reportPath, ["seconds"] = Math.Round(seconds, 3) };
        if (!File.Exists(reportPath)) return result;
        var report = JsonNode.Parse(File.ReadAllText(reportPath))!.AsObject();
        result["mode"] = (string?)report["mode"];
        result["sourceBytes"] = (long?)report["sourceBytes"];
        result["outputBytes"] = new FileInfo(item.Output).Length;
        result["quantizedNodes"] = (int?)report["quantizedNodes"];
        if (report["accuracy"]?["outputs"] is JsonArray outputs && outputs.Count > 0)
            result["worstCosine"] = outputs.Min(o => (double?)o!["meanCosine"] ?? double.NaN);
        var leftFloat = (report["decisions"] as JsonArray ?? [])
            .Where(d => (bool?)d!["quantized"] == false)
            .GroupBy(d => ((string?)d!["opType"], (string?)d!["reason"]))
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key.Item1, StringComparer.Ordinal)
            .Select(g => $"{g.Count()} {g.Key.Item1} ({g.Key.Item2})").ToList();
        if (leftFloat.Count > 0) result["leftFloat"] = string.Join("; ", leftFloat);
        return result;
    }

    /// <summary>
    /// QNT010's text when the project's Quantize.Kernels reference (a version or range) allows an older Quantize.Kernels
    /// than the quantized ONNX model needs (its <see cref="RuntimeVersion.MetadataKey"/>: this tool's Quantize.Kernels).
    /// </summary>
    internal static string? OlderKernels(string? reference, Item item, JsonObject result)
    {
        if (string.IsNullOrWhiteSpace(reference) || (string?)result["status"] is not ("quantized" or "cached")) return null;
        if (!string.Equals(Path.GetExtension(item.Output), ".onnx", StringComparison.OrdinalIgnoreCase)) return null;
        if (!VersionRange.TryParse(reference, out var range) || range.MinVersion is not { } referenced) return null;
        var needed = RuntimeVersion.Current;
        return referenced < needed
            ? $"{item.Model}: the project references Quantize.Kernels {reference}, but the quantized model needs {needed.ToNormalizedString()} or newer ({RuntimeVersion.MetadataKey}); the app would refuse to load it. Reference Quantize.Kernels {needed.ToNormalizedString()} or newer."
            : null;
    }

    private static JsonObject Error(Item item, string code, string message) =>
        new() { ["id"] = item.Id, ["status"] = "error", ["code"] = code, ["message"] = message };

    private static SampleSource? Samples(Item item, OnnxModel model, QuantizationOptions options)
    {
        if (item.Calibration is null && item.Samples is not { Count: > 0 }) return null;
        var inputs = Kernels.Runtime.ModelSession.Create(model).Inputs;
        if (item.Calibration is { } folder)
        {
            var data = CalibrationData.FromFolder(folder, inputs, options.CalibrationSamples);
            return () => data.Select(s => (IReadOnlyDictionary<string, Kernels.Runtime.Tensor>)s.Inputs);
        }
        var folders = item.Samples!.Order(StringComparer.Ordinal).ToList();
        if (options.CalibrationSamples > 0) folders = folders.Take(options.CalibrationSamples).ToList();
        return () => folders.Select(s => (IReadOnlyDictionary<string, Kernels.Runtime.Tensor>)InputData.Read(s, inputs));
    }

    private static IEnumerable<(string Name, string Path)> CalibrationFiles(Item item)
    {
        if (item.Calibration is { } folder) return QuantizationCacheKey.FolderFiles(folder);
        return (item.Samples ?? []).SelectMany(sample => QuantizationCacheKey.FolderFiles(sample)
            .Select(f => (Path.GetFileName(Path.TrimEndingDirectorySeparator(sample)) + "/" + f.Name, f.Path)));
    }

    private static string ToolVersion => typeof(Quantizer).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";

    private static string Oneline(string text) => QuantizeCli.OneLine(text);

    private static void Delete(string path)
    {
        if (File.Exists(path)) File.Delete(path);
    }
}
