using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization.Graph;

/// <summary>
/// Folds BatchNormalization into the Conv before it (both with constant parameters, the Conv's output read by the
/// BatchNormalization only): W' = W * g / sqrt(v + e) per output channel, B' = (B - m) * g / sqrt(v + e) + b. The same
/// function, one op fewer, and the weights that get quantized are the ones that run (ONNX Runtime's quantizer expects
/// this done by its pre-processing).
/// </summary>
internal static class BatchNormalizationFolding
{
    /// <summary>Folds every foldable pair in <paramref name="model"/> (a copy the caller owns); returns how many.</summary>
    public static int Apply(OnnxModel model, GraphNames names)
    {
        var graph = model.Graph;
        var weights = new ConstantWeights(model);
        var readers = graph.Node.SelectMany(n => n.Input).GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output) producers[output] = node;
        }
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        int folded = 0;
        foreach (var norm in graph.Node.Where(n => n.OpType == "BatchNormalization" && n.Domain is "" or "ai.onnx").ToList())
        {
            if (norm.Input.Count < 5 || norm.Output.Count > 1 && norm.Output.Skip(1).Any(o => o.Length > 0)) continue;
            if (!producers.TryGetValue(norm.Input[0], out var conv) || conv.OpType != "Conv" || readers[norm.Input[0]] != 1 || outputs.Contains(norm.Input[0])) continue;
            var w = weights.Find(conv.Input[1]);
            var scale = weights.Find(norm.Input[1]);
            var shift = weights.Find(norm.Input[2]);
            var mean = weights.Find(norm.Input[3]);
            var variance = weights.Find(norm.Input[4]);
            var bias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? weights.Find(conv.Input[2]) : null;
            if (w is null || scale is null || shift is null || mean is null || variance is null || (conv.Input.Count > 2 && conv.Input[2].Length > 0 && bias is null)) continue;
            int channels = (int)w.Dims[0];
            if (new[] { scale, shift, mean, variance }.Any(p => p.Values.Length != channels) || bias is not null && bias.Values.Length != channels) continue;

            float epsilon = norm.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            long inner = w.Values.LongLength / channels;
            var newWeight = new float[w.Values.Length];
            var newBias = new float[channels];
            for (int c = 0; c < channels; c++)
            {
                double factor = scale.Values[c] / Math.Sqrt(variance.Values[c] + (double)epsilon);
                for (long i = 0; i < inner; i++) newWeight[c * inner + i] = (float)(w.Values[c * inner + i] * factor);
                newBias[c] = (float)(((bias?.Values[c] ?? 0) - mean.Values[c]) * factor + shift.Values[c]);
            }
            string weightName = names.Next(w.Root.Name + "_folded"), biasName = names.Next(norm.Name.Length > 0 ? norm.Name + "_bias" : conv.Output[0] + "_bias");
            graph.Initializer.Add(OnnxBuild.Floats(weightName, w.Dims, newWeight));
            graph.Initializer.Add(OnnxBuild.Floats(biasName, [channels], newBias));
            conv.Input[1] = weightName;
            if (conv.Input.Count > 2) conv.Input[2] = biasName;
            else conv.Input.Add(biasName);
            conv.Output[0] = norm.Output[0];
            graph.Node.Remove(norm);
            DeadValues.Remove(graph, [w.Root.Name, scale.Root.Name, shift.Root.Name, mean.Root.Name, variance.Root.Name, .. bias is null ? Array.Empty<string>() : [bias.Root.Name]],
                [.. w.Chain, .. scale.Chain, .. shift.Chain, .. mean.Chain, .. variance.Chain]);
            folded++;
        }
        return folded;
    }
}
