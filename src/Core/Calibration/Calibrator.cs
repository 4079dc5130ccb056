using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Calibration;

/// <summary>Progress of a calibration run, reported after each sample.</summary>
/// <param name="Completed">Samples run so far.</param>
/// <param name="Total">All samples, when known.</param>
/// <param name="Sample">The name of the sample just run.</param>
public readonly record struct CalibrationProgress(int Completed, int? Total, string Sample);

/// <summary>
/// Runs a model over calibration samples on Quantize.Kernels' runtime and gathers the statistics of chosen
/// values (graph inputs and intermediate tensors), then turns them into quantization ranges. Samples are
/// run one at a time and dropped, so memory does not grow with their number. The result does not depend on
/// <see cref="QuantizationOptions.Threads"/>.
/// </summary>
public static class Calibrator
{
    /// <summary>
    /// The range of every value in <paramref name="valueNames"/>, chosen by <paramref name="options"/>'
    /// <see cref="QuantizationOptions.CalibrationMethod"/> from the values seen on the samples.
    /// </summary>
    /// <param name="model">The float model (not changed).</param>
    /// <param name="valueNames">Graph inputs, node outputs or initializers whose ranges are wanted; all must be float.</param>
    /// <param name="data">The samples; <see cref="QuantizationOptions.CalibrationSamples"/> limits how many are used.</param>
    /// <param name="options">The calibration method, its percentile, the activation type and symmetry, and the threads.</param>
    /// <param name="progress">Told after each sample, on the calling thread.</param>
    /// <param name="cancellationToken">Stops between samples.</param>
    /// <returns>The ranges, in the order of <paramref name="valueNames"/>.</returns>
    /// <exception cref="ArgumentException">A name is not a value of the model, or the options are inconsistent.</exception>
    /// <exception cref="InvalidDataException">A sample cannot be read or does not fit the model; the message names it.</exception>
    public static IReadOnlyDictionary<string, ActivationRange> Calibrate(
        OnnxModel model,
        IEnumerable<string> valueNames,
        CalibrationData data,
        QuantizationOptions options,
        IProgress<CalibrationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var statistics = Collect(model, valueNames, data, options, progress, cancellationToken);
        var ranges = new Dictionary<string, ActivationRange>(StringComparer.Ordinal);
        foreach (var (name, values) in statistics) ranges[name] = RangeSelection.Select(values, options);
        return ranges;
    }

    /// <summary>
    /// The statistics of every value in <paramref name="valueNames"/> over the samples, from which
    /// <see cref="RangeSelection"/> chooses ranges (any method, without running the model again).
    /// </summary>
    /// <inheritdoc cref="Calibrate" path="/param"/>
    /// <inheritdoc cref="Calibrate" path="/exception"/>
    /// <returns>The statistics, in the order of <paramref name="valueNames"/>.</returns>
    public static IReadOnlyDictionary<string, TensorStatistics> Collect(
        OnnxModel model,
        IEnumerable<string> valueNames,
        CalibrationData data,
        QuantizationOptions options,
        IProgress<CalibrationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(valueNames);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string[] names = valueNames.Distinct(StringComparer.Ordinal).ToArray();
        CheckNames(model, names);
        var statistics = names.ToDictionary(n => n, _ => new TensorStatistics(), StringComparer.Ordinal);
        if (names.Length == 0) return statistics;

        var samples = data.Take(options.CalibrationSamples);
        using var session = ModelSession.Create(WithOutputs(model, names), new SessionOptions { Threads = options.Threads });
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.Threads, CancellationToken = cancellationToken };
        int completed = 0;
        foreach (var sample in samples)
        {
            cancellationToken.ThrowIfCancellationRequested();
            IReadOnlyDictionary<string, Tensor> values;
            try
            {
                values = session.Run(sample.Inputs, names);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                // Wrong inputs show up as an ArgumentException, or (undeclared shapes) as a node that cannot run them.
                throw new InvalidDataException($"{samples.Source}: sample '{sample.Name}' does not fit the model: {e.Message}", e);
            }
            foreach (var name in names)
            {
                if (values[name].ElementType is not (TensorElementType.Float32 or TensorElementType.Float64 or TensorElementType.Float16))
                    throw new ArgumentException($"{model.Source}: value '{name}' is {values[name]}; only float values have ranges to calibrate.", nameof(valueNames));
            }
            // Each value's statistics are its own, so updating them in parallel is deterministic.
            Parallel.ForEach(names, parallel, name => statistics[name].Add(values[name]));
            completed++;
            progress?.Report(new CalibrationProgress(completed, samples.Count, sample.Name));
        }
        if (completed == 0) throw new InvalidDataException($"{samples.Source}: there are no calibration samples.");
        return statistics;
    }

    /// <summary>Every name must be a graph input, an initializer or a node output.</summary>
    private static void CheckNames(OnnxModel model, string[] names)
    {
        var known = new HashSet<string>(model.Graph.Input.Select(i => i.Name), StringComparer.Ordinal);
        known.UnionWith(model.Graph.Initializer.Select(t => t.Name));
        known.UnionWith(model.Graph.Node.SelectMany(n => n.Output));
        var unknown = names.Where(n => !known.Contains(n)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"{model.Source}: has no value{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Take(5).Select(n => $"'{n}'"))}{(unknown.Count > 5 ? ", ..." : "")} to calibrate.");
    }

    /// <summary>A copy of the model that also outputs <paramref name="names"/> (the copy shares the weights' bytes).</summary>
    private static OnnxModel WithOutputs(OnnxModel model, string[] names)
    {
        var proto = model.Proto.Clone();
        var outputs = proto.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (outputs.Add(name)) proto.Graph.Output.Add(new ValueInfoProto { Name = name });
        }
        return new OnnxModel(proto, model.Source, model.BaseDirectory);
    }
}
