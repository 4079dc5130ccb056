using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Evaluation;

/// <summary>
/// Runs a float model and its quantized form on the same samples (on our runtime) and measures, per output and
/// optionally per intermediate tensor, how far the quantized one drifts: cosine, max abs error, SQNR, top-1.
/// </summary>
public static class AccuracyEvaluator
{
    /// <summary>Compares <paramref name="quantizedModel"/> with <paramref name="floatModel"/> on <paramref name="samples"/>.</summary>
    /// <param name="floatModel">The float model.</param>
    /// <param name="quantizedModel">The quantized model (same inputs and outputs).</param>
    /// <param name="samples">Input sets, read one at a time; null means one set generated from the declared input types.</param>
    /// <param name="threads">Threads for the runs; the result does not depend on it.</param>
    /// <param name="layers">Also compare the intermediate float tensors both models have (by name).</param>
    public static AccuracyReport Compare(OnnxModel floatModel, OnnxModel quantizedModel, IEnumerable<IReadOnlyDictionary<string, Tensor>>? samples,
        int threads = 1, bool layers = false)
    {
        var layerNames = layers ? SharedIntermediates(floatModel, quantizedModel) : [];
        var reference = layers ? WithOutputs(floatModel, layerNames) : floatModel;
        var candidate = layers ? WithOutputs(quantizedModel, layerNames) : quantizedModel;
        var options = new SessionOptions { Threads = threads };
        using var referenceSession = ModelSession.Create(reference, options);
        using var candidateSession = ModelSession.Create(candidate, options);

        bool generated = samples is null;
        samples ??= [Running.InputData.Generate(referenceSession.Inputs)];
        var outputNames = floatModel.Graph.Output.Select(o => o.Name).Where(n => quantizedModel.Graph.Output.Any(o => o.Name == n)).ToList();
        var outputs = outputNames.ToDictionary(n => n, n => new TensorComparison(n), StringComparer.Ordinal);
        var intermediate = layerNames.ToDictionary(n => n, n => new TensorComparison(n), StringComparer.Ordinal);
        var incomparable = new HashSet<string>(StringComparer.Ordinal);

        int count = 0;
        foreach (var sample in samples)
        {
            var expected = referenceSession.Run(sample);
            var actual = candidateSession.Run(sample);
            foreach (var (name, comparison) in outputs.Concat(intermediate))
            {
                if (incomparable.Contains(name) || !expected.TryGetValue(name, out var e) || !actual.TryGetValue(name, out var a) || !comparison.Add(e, a))
                    incomparable.Add(name);
            }
            count++;
        }
        if (count == 0) throw new ArgumentException("There are no samples to compare on.", nameof(samples));

        var outputResults = outputs.Values.Where(c => !incomparable.Contains(c.Name)).Select(c => c.Result()).ToList();
        var layerResults = layers
            ? intermediate.Values.Where(c => !incomparable.Contains(c.Name)).Select(c => c.Result()).OrderBy(r => r.Sqnr).ThenBy(r => r.Name, StringComparer.Ordinal).ToList()
            : null;
        return new AccuracyReport(outputResults, layerResults, count, generated);
    }

    /// <summary>Values that are produced by a node in both models (so may be compared), excluding graph outputs.</summary>
    private static List<string> SharedIntermediates(OnnxModel a, OnnxModel b)
    {
        var produced = b.Graph.Node.SelectMany(n => n.Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
        var outputs = a.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        return a.Graph.Node.Where(n => n.OpType is not ("Constant" or "Shape" or "ConstantOfShape"))
            .SelectMany(n => n.Output).Where(o => o.Length > 0 && produced.Contains(o) && !outputs.Contains(o)).Distinct().ToList();
    }

    /// <summary>A copy of the model with extra graph outputs (types left to the runtime).</summary>
    private static OnnxModel WithOutputs(OnnxModel model, IEnumerable<string> names)
    {
        var proto = model.Proto.Clone();
        foreach (var name in names) proto.Graph.Output.Add(new ValueInfoProto { Name = name });
        return new OnnxModel(proto, model.Source, model.BaseDirectory);
    }
}
