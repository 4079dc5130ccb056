using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Folds an inference BatchNormalization into the Conv before it, when the Conv's weight (and bias) and the
/// normalization's parameters are constant and nothing else reads the Conv's output:
/// <c>W' = W x s</c>, <c>B' = (B - mean) x s + bias</c> with <c>s = scale / sqrt(var + epsilon)</c> per output
/// channel, computed in float64. The Conv then writes the normalized values directly.
/// </summary>
internal sealed class BatchNormalizationFolding : IConstantRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes, Dictionary<string, Tensor> constants)
    {
        var view = new GraphView(model, nodes);
        var names = new HashSet<string>(nodes.SelectMany(n => n.Input.Concat(n.Output)).Concat(constants.Keys), StringComparer.Ordinal);
        var replace = new Dictionary<NodeProto, NodeProto>(ReferenceEqualityComparer.Instance);
        var remove = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var conv in nodes)
        {
            if (conv.OpType != "Conv" || !GraphView.IsDefaultDomain(conv) || conv.Output.Count != 1) continue;
            if (view.SoleReader(conv.Output[0]) is not { OpType: "BatchNormalization" } norm || norm.Output.Count(o => o.Length > 0) != 1) continue;
            if (norm.Attribute.FirstOrDefault(a => a.Name == "spatial") is { I: 0 }) continue;
            if (norm.Attribute.FirstOrDefault(a => a.Name == "training_mode") is { I: not 0 }) continue;
            if (!Float(constants, conv.Input[1], out var weight) || weight.Rank < 3) continue;
            Tensor? convBias = null;
            if (conv.Input.Count > 2 && conv.Input[2].Length > 0 && !Float(constants, conv.Input[2], out convBias)) continue;
            if (!Float(constants, norm.Input[1], out var scale) || !Float(constants, norm.Input[2], out var shift)
                || !Float(constants, norm.Input[3], out var mean) || !Float(constants, norm.Input[4], out var variance)) continue;
            int channels = weight.Shape[0];
            if (scale.Length != channels || shift.Length != channels || mean.Length != channels || variance.Length != channels) continue;
            double epsilon = norm.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;

            var w = weight.AsSpan<float>();
            int perChannel = weight.Length / channels;
            var folded = new float[weight.Length];
            var foldedBias = new float[channels];
            for (int c = 0; c < channels; c++)
            {
                double s = scale.AsSpan<float>()[c] / Math.Sqrt(variance.AsSpan<float>()[c] + epsilon);
                for (int i = 0; i < perChannel; i++) folded[c * perChannel + i] = (float)(w[c * perChannel + i] * s);
                double b = convBias is null ? 0 : convBias.AsSpan<float>()[c];
                foldedBias[c] = (float)((b - mean.AsSpan<float>()[c]) * s + shift.AsSpan<float>()[c]);
            }
            string weightName = Unique(names, conv.Input[1] + "_bn_folded");
            string biasName = Unique(names, (conv.Name.Length > 0 ? conv.Name : conv.Output[0]) + "_bn_bias");
            constants[weightName] = Tensor.Create(folded, weight.ShapeArray);
            constants[biasName] = Tensor.Create(foldedBias, channels);

            var fused = conv.Clone();
            fused.Input.Clear();
            fused.Input.AddRange([conv.Input[0], weightName, biasName]);
            fused.Output[0] = norm.Output[0];
            replace[norm] = fused;
            remove.Add(conv);
        }
        if (replace.Count == 0) return nodes;
        return nodes.Where(n => !remove.Contains(n)).Select(n => replace.GetValueOrDefault(n, n)).ToList();
    }

    private static bool Float(Dictionary<string, Tensor> constants, string name, out Tensor value)
    {
        value = null!;
        if (!constants.TryGetValue(name, out var found) || found.ElementType != TensorElementType.Float32) return false;
        value = found;
        return true;
    }

    private static string Unique(HashSet<string> names, string wanted)
    {
        string name = wanted;
        for (int i = 1; !names.Add(name); i++) name = $"{wanted}_{i}";
        return name;
    }
}
