using System.Security.Cryptography;
using System.Text.Json;
using Quantize.Core.Evaluation;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Quantization;

/// <summary>Where a quantization is: the stage (calibrating, quantizing, evaluating, keeping a layer float) and, when counted, how far.</summary>
/// <param name="Stage">What is being done, in a few words.</param>
/// <param name="Completed">Units done in this stage (samples, layers).</param>
/// <param name="Total">Units in this stage, when known.</param>
public readonly record struct QuantizationProgress(string Stage, int Completed, int? Total);

/// <summary>An <see cref="IProgress{T}"/> that calls back on the reporting thread (<see cref="Progress{T}"/> posts to a context).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

/// <summary>Samples of model inputs, enumerable more than once (calibration, evaluation, the accuracy target loop).</summary>
public delegate IEnumerable<IReadOnlyDictionary<string, Tensor>> SampleSource();

/// <summary>
/// The ONNX quantizer: applies a mode to a copy of the model, measures accuracy when it has samples, keeps the most
/// damaging layers float until an accuracy target holds, and records provenance in the model's metadata.
/// </summary>
public static class Quantizer
{
    /// <summary>Metadata keys written into every quantized model.</summary>
    public const string ToolKey = "quantize.tool", ModeKey = "quantize.mode", OptionsKey = "quantize.options", SourceKey = "quantize.source_sha256";

    /// <summary>Quantizes a copy of <paramref name="source"/> (never changed).</summary>
    /// <param name="source">The float model.</param>
    /// <param name="options">The options; validated first.</param>
    /// <param name="calibration">Samples for activation statistics (static ranges; dynamic-mode smoothing); may be null.</param>
    /// <param name="evaluation">Samples to measure accuracy on; null means the calibration samples (or none).</param>
    /// <param name="sourceSha256">The source file's SHA-256 (lowercase hex); computed from the model's bytes when null.</param>
    /// <param name="progress">Told when a stage starts and after each calibration sample, on the calling thread.</param>
    /// <exception cref="ArgumentException">Bad options, or a mode that needs data without it.</exception>
    public static QuantizationResult Quantize(OnnxModel source, QuantizationOptions options, SampleSource? calibration = null, SampleSource? evaluation = null,
        string? sourceSha256 = null, IProgress<QuantizationProgress>? progress = null)
    {
        options.Validate();
        sourceSha256 ??= Convert.ToHexStringLower(SHA256.HashData(source.ToByteArray()));
        evaluation ??= calibration;
        var statistics = Measure(source, options, calibration, progress);
        var keepFloat = new List<string>();
        progress?.Report(new QuantizationProgress("quantizing", 0, null));
        var result = Apply(source, options, statistics, keepFloat);
        AccuracyReport? accuracy = null;
        bool? met = null;
        var notes = new List<string>();
        if (evaluation is not null || options.MinimumCosine is not null)
        {
            progress?.Report(new QuantizationProgress("evaluating", 0, null));
            try
            {
                accuracy = Evaluate(source, result.Model, evaluation, options, layers: options.MinimumCosine is not null || options.ReportLayers);
            }
            catch (Exception e) when (options.MinimumCosine is null && e is UnsupportedModelException or NotSupportedException)
            {
                // Measuring is a service on top of the quantization asked for; a model our runtime cannot run is still quantized.
                notes.Add($"accuracy not measured: our runtime cannot run the model ({e.Message})");
            }
            if (options.MinimumCosine is double target && accuracy is not null)
            {
                // Giving up more than half the quantized layers is not the quantization that was asked for: stop there.
                var ranking = RankByDamage(source, result, accuracy);
                int limit = (result.QuantizedCount + 1) / 2;
                foreach (string node in ranking.Take(limit))
                {
                    if (accuracy.WorstMeanCosine >= target) break;
                    keepFloat.Add(node);
                    progress?.Report(new QuantizationProgress($"keeping {node} float", keepFloat.Count, limit));
                    result = Apply(source, options, statistics, keepFloat);
                    accuracy = Evaluate(source, result.Model, evaluation, options, layers: options.ReportLayers);
                }
                met = accuracy.WorstMeanCosine >= target;
                if (!options.ReportLayers) accuracy = accuracy with { Layers = null };
            }
        }
        Stamp(result.Model.Proto, options, sourceSha256);
        return result with { Accuracy = accuracy, KeptFloatForAccuracy = keepFloat, TargetMet = met, SourceSha256 = sourceSha256, Notes = [.. result.Notes, .. notes] };
    }

    /// <summary>
    /// Quantizes the model file <paramref name="sourcePath"/> into <paramref name="outputPath"/>: written to a temporary
    /// file and renamed, external data for large models, the source untouched.
    /// </summary>
    /// <returns>The result with the file sizes and the time taken.</returns>
    /// <param name="sourcePath">The float model file.</param>
    /// <param name="outputPath">Where the quantized model goes (not the source).</param>
    /// <param name="options">The options; validated first.</param>
    /// <param name="calibration">Samples for activation statistics; may be null.</param>
    /// <param name="evaluation">Samples to measure accuracy on; null means the calibration samples (or none).</param>
    /// <param name="progress">Told when a stage starts and after each calibration sample, on the calling thread.</param>
    public static QuantizationSummary QuantizeFile(string sourcePath, string outputPath, QuantizationOptions options, SampleSource? calibration = null,
        SampleSource? evaluation = null, IProgress<QuantizationProgress>? progress = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (Path.GetFullPath(sourcePath) == Path.GetFullPath(outputPath))
            throw new ArgumentException($"{outputPath}: the output would overwrite the source model; choose another output path.");
        var loaded = Kernels.Models.Model.Load(sourcePath);
        if (loaded is Kernels.Models.TensorFlow.GraphDefModel)
            return TensorFlow.GraphDefQuantizer.QuantizeFile(sourcePath, outputPath, options, calibration ?? evaluation, clock);
        string sha;
        using (var stream = File.OpenRead(sourcePath)) sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        var source = (OnnxModel)loaded;
        var result = Quantize(source, options, calibration, evaluation, sha, progress);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputPath));
        if (folder is not null) Directory.CreateDirectory(folder);
        result.Model.Save(outputPath);
        return new QuantizationSummary(sourcePath, outputPath, options, result, StoredBytes(source, sourcePath), StoredBytes(OnnxModel.Load(outputPath), outputPath), clock.Elapsed.TotalSeconds);
    }

    /// <summary>A model file's size with the external data files it refers to.</summary>
    private static long StoredBytes(OnnxModel model, string path)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        var external = model.Graph.Initializer.SelectMany(t => t.ExternalData).Where(e => e.Key == "location").Select(e => e.Value).Distinct(StringComparer.Ordinal);
        return new FileInfo(path).Length + external.Select(location => new FileInfo(Path.Combine(folder, location))).Where(f => f.Exists).Sum(f => f.Length);
    }

    /// <summary>What the mode needs from the calibration samples, measured once (the accuracy loop re-quantizes many times).</summary>
    private sealed record Statistics(IReadOnlyDictionary<string, float[]>? ChannelMaxima, OnnxModel? Prepared = null,
        IReadOnlyDictionary<string, Calibration.ActivationRange>? Ranges = null);

    private static Statistics Measure(OnnxModel source, QuantizationOptions options, SampleSource? calibration, IProgress<QuantizationProgress>? progress)
    {
        if (options.Mode == QuantizationMode.Static)
        {
            if (calibration is null)
                throw new ArgumentException($"{source.Source}: static mode needs calibration data (a folder of input samples) to choose activation ranges.");
            // Smoothing and BatchNormalization folding first: the weights and activations quantized are then the ones that run.
            var start = options.EffectiveSmoothing > 0
                ? ActivationSmoothing.Apply(source, options, ActivationSmoothing.MeasureChannels(source, options, calibration), new HashSet<string>())
                : source;
            var proto = start.Proto.Clone();
            var prepared = new OnnxModel(proto, source.Source, source.BaseDirectory);
            Graph.BatchNormalizationFolding.Apply(prepared, new Graph.GraphNames(proto.Graph));
            // Plan on the copy the mode will rewrite (its opset raised as needed); calibrate the model as it is.
            var activations = StaticQuantizer.Activations(new QuantizationContext(prepared, options).Model, options, new HashSet<string>());
            var samples = Calibration.CalibrationData.FromSamples(calibration().Select((inputs, i) =>
                new Calibration.CalibrationSample($"sample {i + 1}", inputs.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal))));
            progress?.Report(new QuantizationProgress("calibrating", 0, options.CalibrationSamples));
            var sampleProgress = progress is null ? null
                : new InlineProgress<Calibration.CalibrationProgress>(p => progress.Report(new QuantizationProgress("calibrating", p.Completed, p.Total ?? options.CalibrationSamples)));
            var ranges = Calibration.Calibrator.Calibrate(prepared, activations, samples, options, sampleProgress);
            return new Statistics(null, prepared, ranges);
        }
        if (options.Mode is QuantizationMode.Dynamic or QuantizationMode.Int4 && options.EffectiveSmoothing > 0 && calibration is not null)
            return new Statistics(ActivationSmoothing.MeasureChannels(source, options, calibration));
        return new Statistics(null);
    }

    private static QuantizationResult Apply(OnnxModel source, QuantizationOptions options, Statistics statistics, IReadOnlyCollection<string> keepFloat)
    {
        var keep = keepFloat.ToHashSet(StringComparer.Ordinal);
        if (statistics.ChannelMaxima is { } maxima) source = ActivationSmoothing.Apply(source, options, maxima, keep);
        if (statistics.Prepared is { } prepared) source = prepared;
        var context = new QuantizationContext(source, options, keep);
        switch (options.Mode)
        {
            case QuantizationMode.Weights:
                WeightOnlyQuantizer.Apply(context);
                break;
            case QuantizationMode.Dynamic:
                DynamicQuantizer.Apply(context);
                break;
            case QuantizationMode.Int4:
                Int4Quantizer.Apply(context);
                break;
            case QuantizationMode.Static:
                StaticQuantizer.Apply(context, statistics.Ranges!, keep);
                break;
            case QuantizationMode.Round:
                throw new ArgumentException($"{source.Source}: round mode (round_weights) is for TensorFlow GraphDefs; ONNX models take weights, dynamic, static or int4.");
            default:
                throw new ArgumentException($"{source.Source}: unknown mode {options.Mode}.");
        }
        return context.Finish();
    }

    private static AccuracyReport Evaluate(OnnxModel source, OnnxModel quantized, SampleSource? samples, QuantizationOptions options, bool layers) =>
        AccuracyEvaluator.Compare(source, quantized, samples?.Invoke(), options.Threads, layers);

    /// <summary>
    /// Quantized nodes, most damaging first: the drop in cosine (against the float model) from a node's activation
    /// input to its output, so that a node is not blamed for the error it was handed.
    /// </summary>
    private static List<string> RankByDamage(OnnxModel source, QuantizationResult result, AccuracyReport accuracy)
    {
        var cosine = (accuracy.Layers ?? []).Concat(accuracy.Outputs).GroupBy(l => l.Name).ToDictionary(g => g.Key, g => g.First().MeanCosine, StringComparer.Ordinal);
        var byLabel = source.Graph.Node.GroupBy(QuantizationContext.Label).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var damage = new List<(string Node, double Damage)>();
        foreach (var decision in result.Decisions.Where(d => d.Quantized))
        {
            if (!byLabel.TryGetValue(decision.Node, out var node)) continue;
            double output = cosine.GetValueOrDefault(node.Output[0], 1);
            double input = node.OpType == "Gather" ? 1 : cosine.GetValueOrDefault(node.Input[0], 1);
            damage.Add((decision.Node, input - output));
        }
        return damage.OrderByDescending(d => d.Damage).ThenBy(d => d.Node, StringComparer.Ordinal).Select(d => d.Node).ToList();
    }

    /// <summary>Provenance: the tool, the mode and options, and the source's hash, in metadata_props.</summary>
    private static void Stamp(ModelProto model, QuantizationOptions options, string sourceSha256)
    {
        var version = typeof(Quantizer).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
        Set(model, ToolKey, $"Quantize.Build {version}");
        Set(model, ModeKey, options.Mode.ToString().ToLowerInvariant());
        Set(model, OptionsKey, OptionsJson(options));
        Set(model, SourceKey, sourceSha256);
        // The runtime this quantizer was built and tested with is the oldest one known to run what it writes.
        Set(model, RuntimeVersion.MetadataKey, RuntimeVersion.Current.ToNormalizedString());
    }

    private static void Set(ModelProto model, string key, string value)
    {
        var entry = model.MetadataProps.FirstOrDefault(p => p.Key == key);
        if (entry is null) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        else entry.Value = value;
    }

    /// <summary>
    /// The mode to use when none is given: <see cref="QuantizationMode.Static"/> for a convolutional model (one with a
    /// Conv) when calibration data is given, <see cref="QuantizationMode.Dynamic"/> otherwise (transformers, recurrent
    /// models, or no data), as the issue of each mode and ONNX Runtime's guidance recommend.
    /// </summary>
    public static QuantizationMode DefaultMode(OnnxModel model, bool hasCalibration) =>
        hasCalibration && model.Graph.Node.Any(n => n.OpType == "Conv" && n.Domain is "" or "ai.onnx") ? QuantizationMode.Static : QuantizationMode.Dynamic;

    /// <summary>The options as one JSON object, keys in a fixed order (so the output is byte-identical run to run). Threads are left out: they do not change the result.</summary>
    public static string OptionsJson(QuantizationOptions options)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("mode", options.Mode.ToString().ToLowerInvariant());
            json.WriteBoolean("perChannel", options.PerChannel);
            json.WriteString("weightType", options.WeightType.ToString().ToLowerInvariant());
            json.WriteString("activationType", options.ActivationType.ToString().ToLowerInvariant());
            json.WriteBoolean("symmetricWeights", options.SymmetricWeights);
            json.WriteBoolean("symmetricActivations", options.SymmetricActivations);
            json.WriteBoolean("reduceRange", options.EffectiveReduceRange);
            Strings(json, "includeNodes", options.IncludeNodes);
            Strings(json, "excludeNodes", options.ExcludeNodes);
            Strings(json, "includeOpTypes", options.IncludeOpTypes);
            Strings(json, "excludeOpTypes", options.ExcludeOpTypes);
            json.WriteNumber("minimumSize", options.MinimumSize);
            json.WriteString("calibrationMethod", options.CalibrationMethod.ToString().ToLowerInvariant());
            json.WriteNumber("percentile", options.Percentile);
            json.WriteNumber("calibrationSamples", options.CalibrationSamples);
            json.WriteNumber("smoothing", options.EffectiveSmoothing);
            json.WriteNumber("int4BlockSize", options.Int4BlockSize);
            json.WriteBoolean("int4Symmetric", options.Int4Symmetric);
            json.WriteString("int4Format", options.Int4Format.ToString().ToLowerInvariant());
            if (options.MinimumCosine is double c) json.WriteNumber("minimumCosine", c);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Strings(Utf8JsonWriter json, string name, IEnumerable<string> values)
    {
        json.WriteStartArray(name);
        foreach (var v in values) json.WriteStringValue(v);
        json.WriteEndArray();
    }
}
