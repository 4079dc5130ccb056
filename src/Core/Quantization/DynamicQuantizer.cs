using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Quantization;

/// <summary>
/// The <c>dynamic</c> mode for ONNX: every MatMul whose second input is a constant 2-D float weight becomes
/// ONNX Runtime's quantize_dynamic pattern: DynamicQuantizeLinear on the activation (once per activation
/// tensor), MatMulInteger with the int8 weight (per-column symmetric scales by default), Cast to float, and a
/// Mul by the product of the two scales. Standard ONNX: ONNX Runtime runs it, and so does our runtime.
/// </summary>
public static class DynamicQuantizer
{
    private const int MinimumOpset = 11; // DynamicQuantizeLinear

    /// <summary>Quantizes a copy of <paramref name="source"/>.</summary>
    public static QuantizationResult Quantize(OnnxModel source, QuantizationOptions options)
    {
        var proto = source.Proto.Clone();
        var model = new OnnxModel(proto, source.Source, source.BaseDirectory);
        var graph = proto.Graph;
        var decisions = new List<NodeDecision>();
        long opset = proto.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;

        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var consumers = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var input in node.Input) consumers[input] = consumers.GetValueOrDefault(input) + 1;
        }

        var quantizedWeights = new Dictionary<string, (string Weight, string Scale, string ZeroPoint)>(StringComparer.Ordinal);
        var quantizedActivations = new Dictionary<string, (string Value, string Scale, string ZeroPoint)>(StringComparer.Ordinal);
        var rewritten = new List<NodeProto>();
        var names = new UniqueNames(graph);

        foreach (var node in graph.Node)
        {
            string label = node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? node.OpType;
            if (node.OpType != "MatMul" || node.Domain is not ("" or "ai.onnx"))
            {
                rewritten.Add(node);
                continue;
            }
            string? skip = opset < MinimumOpset ? $"opset {opset} predates DynamicQuantizeLinear (11)"
                : options.ExcludeNodes.Contains(node.Name) ? "excluded by name"
                : options.ExcludeOpTypes.Contains(node.OpType) ? "excluded by op type"
                : !initializers.TryGetValue(node.Input[1], out var weight) ? "the weight is not a constant initializer"
                : weight.DataType != (int)TensorProto.Types.DataType.Float ? "the weight is not float32"
                : weight.Dims.Count != 2 ? "the weight is not 2-D"
                : weight.Dims[0] * weight.Dims[1] < options.MinimumSize ? $"the weight has fewer than {options.MinimumSize} elements"
                : null;
            if (skip is not null)
            {
                decisions.Add(new NodeDecision(label, node.OpType, false, skip));
                rewritten.Add(node);
                continue;
            }

            var w = initializers[node.Input[1]];
            if (!quantizedWeights.TryGetValue(w.Name, out var q))
            {
                q = QuantizeWeight(model, w, options, names, graph);
                quantizedWeights[w.Name] = q;
            }
            string a = node.Input[0];
            if (!quantizedActivations.TryGetValue(a, out var qa))
            {
                qa = (names.Next(a + "_quantized"), names.Next(a + "_scale"), names.Next(a + "_zero_point"));
                quantizedActivations[a] = qa;
                rewritten.Add(Node("DynamicQuantizeLinear", names.Next(a + "_QuantizeLinear"), [a], [qa.Value, qa.Scale, qa.ZeroPoint]));
            }
            string y = node.Output[0];
            string product = names.Next(y + "_MatMulInteger"), asFloat = names.Next(y + "_float"), scale = names.Next(y + "_scale");
            rewritten.Add(Node("MatMulInteger", names.Next(label + "_quant"), [qa.Value, q.Weight, qa.ZeroPoint, q.ZeroPoint], [product]));
            var cast = Node("Cast", names.Next(label + "_cast"), [product], [asFloat]);
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (int)TensorProto.Types.DataType.Float });
            rewritten.Add(cast);
            rewritten.Add(Node("Mul", names.Next(label + "_scales"), [qa.Scale, q.Scale], [scale]));
            rewritten.Add(Node("Mul", names.Next(label + "_output"), [asFloat, scale], [y]));
            decisions.Add(new NodeDecision(label, node.OpType, true, $"int8 weight ({(options.PerChannel ? "per column" : "per tensor")}), uint8 activation quantized at run time"));
        }

        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
        // Float weights nobody reads any more are dropped.
        var stillRead = new HashSet<string>(graph.Node.SelectMany(n => n.Input), StringComparer.Ordinal);
        foreach (var name in quantizedWeights.Keys)
        {
            if (!stillRead.Contains(name) && !graph.Output.Any(o => o.Name == name))
            {
                var original = graph.Initializer.First(t => t.Name == name);
                graph.Initializer.Remove(original);
                var input = graph.Input.FirstOrDefault(i => i.Name == name);
                if (input is not null) graph.Input.Remove(input);
            }
        }
        return new QuantizationResult(model, decisions);
    }

    private static (string Weight, string Scale, string ZeroPoint) QuantizeWeight(OnnxModel model, TensorProto weight, QuantizationOptions options,
        UniqueNames names, GraphProto graph)
    {
        int k = (int)weight.Dims[0], n = (int)weight.Dims[1];
        var values = model.ReadTensor(weight).ToArray<float>();
        var range = QuantizedRange.Of(TensorElementType.Int8, narrow: true);
        int groups = options.PerChannel ? n : 1;
        var scales = new float[groups];
        for (int j = 0; j < n; j++)
        {
            for (int i = 0; i < k; i++)
            {
                float magnitude = MathF.Abs(values[i * n + j]);
                int g = options.PerChannel ? j : 0;
                if (magnitude > scales[g]) scales[g] = magnitude;
            }
        }
        for (int g = 0; g < groups; g++)
            scales[g] = QuantizationParameters.FromRange(-scales[g], scales[g], range, symmetric: true).Scale;

        byte[] quantized = LinearQuantization.Quantize(values, [k, n], scales, [], axis: 1, blockSize: 0, TensorElementType.Int8, range);
        string weightName = names.Next(weight.Name + "_quantized"), scaleName = names.Next(weight.Name + "_scale"), zeroName = names.Next(weight.Name + "_zero_point");
        long[] parameterShape = options.PerChannel ? [n] : [];
        graph.Initializer.Add(Tensor(weightName, TensorProto.Types.DataType.Int8, [k, n], quantized));
        graph.Initializer.Add(Tensor(scaleName, TensorProto.Types.DataType.Float, parameterShape, FloatBytes(scales)));
        graph.Initializer.Add(Tensor(zeroName, TensorProto.Types.DataType.Int8, parameterShape, new byte[groups]));
        return (weightName, scaleName, zeroName);
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static TensorProto Tensor(string name, TensorProto.Types.DataType type, long[] dims, byte[] raw)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static byte[] FloatBytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }

    /// <summary>New value and node names that do not collide with the graph's.</summary>
    private sealed class UniqueNames
    {
        private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

        public UniqueNames(GraphProto graph)
        {
            foreach (var node in graph.Node)
            {
                _taken.Add(node.Name);
                foreach (var output in node.Output) _taken.Add(output);
            }
            foreach (var t in graph.Initializer) _taken.Add(t.Name);
            foreach (var i in graph.Input) _taken.Add(i.Name);
        }

        public string Next(string wanted)
        {
            string name = wanted;
            for (int i = 1; !_taken.Add(name); i++) name = $"{wanted}_{i}";
            return name;
        }
    }
}
