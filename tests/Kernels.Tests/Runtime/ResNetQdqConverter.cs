using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Tests.Support;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// A test-only static quantizer for the CNTK ResNet18 (Conv, BatchNormalization, Relu, Add, MaxPool, AveragePool), writing
/// the QDQ form quantize_static writes: BatchNormalization folded into the Conv before it; per-output-channel symmetric
/// int8 weights and int32 biases (scale x_scale x w_scale[m]) behind DequantizeLinear; every activation a consumer reads
/// quantized to uint8 through a QuantizeLinear/DequantizeLinear pair, with the min/max range seen on calibration images
/// (a Relu's input is left alone: its output's pair is the one that counts, and MaxPool's output shares its input's).
/// </summary>
internal static class ResNetQdqConverter
{
    /// <summary>The float model with BatchNormalization folded, at opset 13 (as the quantizer's pre-processing leaves it).</summary>
    public static ModelProto FoldBatchNormalization(ModelProto source)
    {
        var model = source.Clone();
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var nodes = new List<NodeProto>();
        foreach (var node in graph.Node)
        {
            if (node.OpType != "BatchNormalization")
            {
                nodes.Add(node);
                continue;
            }
            var conv = nodes.Single(n => n.OpType == "Conv" && n.Output[0] == node.Input[0]);
            float[] w = ReadFloats(initializers[conv.Input[1]]);
            float[] scale = ReadFloats(initializers[node.Input[1]]), shift = ReadFloats(initializers[node.Input[2]]);
            float[] mean = ReadFloats(initializers[node.Input[3]]), variance = ReadFloats(initializers[node.Input[4]]);
            double epsilon = node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            int channels = scale.Length, perChannel = w.Length / channels;
            var folded = new float[w.Length];
            var bias = new float[channels];
            for (int m = 0; m < channels; m++)
            {
                double s = scale[m] / Math.Sqrt(variance[m] + epsilon);
                for (int i = 0; i < perChannel; i++) folded[m * perChannel + i] = (float)(w[m * perChannel + i] * s);
                double b = conv.Input.Count > 2 ? ReadFloats(initializers[conv.Input[2]])[m] : 0;
                bias[m] = (float)((b - mean[m]) * s + shift[m]);
            }
            var weights = initializers[conv.Input[1]];
            weights.FloatData.Clear();
            weights.RawData = ByteString.CopyFrom(Raw(folded));
            string biasName = conv.Name + "_bias";
            graph.Initializer.Add(Tensor(biasName, DataType.Float, [channels], Raw(bias)));
            if (conv.Input.Count > 2) conv.Input[2] = biasName;
            else conv.Input.Add(biasName);
            conv.Output[0] = node.Output[0];
        }
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        var used = nodes.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        var unused = graph.Initializer.Where(t => !used.Contains(t.Name)).ToList();
        foreach (var t in unused) graph.Initializer.Remove(t);
        // IR 3 lists initializers as inputs too; from IR 4 on they need not be, and the quantized model replaces them.
        foreach (var input in graph.Input.Where(i => initializers.ContainsKey(i.Name)).ToList()) graph.Input.Remove(input);
        model.IrVersion = 7;
        model.OpsetImport.Clear();
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return model;
    }

    /// <summary>Min and max of every node output over <paramref name="inputs"/>, from ONNX Runtime running a copy that outputs them all.</summary>
    public static Dictionary<string, (float Min, float Max)> Calibrate(ModelProto model, string inputName, IEnumerable<float[]> inputs, long[] shape)
    {
        var probe = model.Clone();
        var outputs = probe.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var names = new List<string> { inputName };
        foreach (var node in probe.Graph.Node)
        {
            foreach (string output in node.Output)
            {
                names.Add(output);
                if (outputs.Add(output))
                    probe.Graph.Output.Add(new ValueInfoProto { Name = output, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float } } });
            }
        }
        var ranges = new Dictionary<string, (float Min, float Max)>(StringComparer.Ordinal);
        using var session = OrtOracle.Session(probe.ToByteArray());
        foreach (float[] x in inputs)
        {
            using var value = OrtValue.CreateTensorValueFromMemory(x, shape);
            using var runOptions = new RunOptions();
            string[] outputNames = names.Skip(1).ToArray();
            using var results = session.Run(runOptions, [inputName], [value], outputNames);
            Observe(ranges, inputName, x);
            for (int i = 0; i < outputNames.Length; i++) Observe(ranges, outputNames[i], results[i].GetTensorDataAsSpan<float>());
        }
        return ranges;
    }

    /// <summary>The QDQ model of the BN-folded float <paramref name="model"/> with activation <paramref name="ranges"/>.</summary>
    public static ModelProto Quantize(ModelProto model, Dictionary<string, (float Min, float Max)> ranges)
    {
        var qdq = model.Clone();
        var graph = qdq.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var readers = graph.Node.SelectMany(n => n.Input.Select(i => (Value: i, Node: n))).ToLookup(p => p.Value, p => p.Node);
        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);

        // Activation parameters: uint8, asymmetric, the range widened to hold 0; MaxPool's output takes its input's.
        var parameters = new Dictionary<string, (float Scale, byte ZeroPoint)>(StringComparer.Ordinal);
        var values = new List<string> { graph.Input[0].Name };
        values.AddRange(graph.Node.SelectMany(n => n.Output));
        foreach (string value in values)
        {
            var (min, max) = ranges[value];
            min = Math.Min(min, 0);
            max = Math.Max(max, 0);
            float scale = max > min ? (max - min) / 255f : 1f;
            parameters[value] = (scale, (byte)Math.Clamp(Math.Round(-min / scale), 0, 255));
        }
        foreach (var node in graph.Node.Where(n => n.OpType == "MaxPool")) parameters[node.Output[0]] = parameters[node.Input[0]];

        var nodes = new List<NodeProto>();
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        void AddPair(string value)
        {
            var (scale, zeroPoint) = parameters[value];
            string s = Add(graph, Tensor(value + "_scale", DataType.Float, [], Raw([scale])));
            string z = Add(graph, Tensor(value + "_zero_point", DataType.Uint8, [], [zeroPoint]));
            bool output = graphOutputs.Contains(value);
            string source = output ? value + "_float" : value;
            string target = output ? value : value + "_dq";
            nodes.Add(Node("QuantizeLinear", [source, s, z], value + "_q"));
            nodes.Add(Node("DequantizeLinear", [value + "_q", s, z], target));
            if (!output) renamed[value] = target;
        }
        bool Quantized(string value) => !readers[value].Any() ? graphOutputs.Contains(value) : !readers[value].All(n => n.OpType == "Relu");

        if (Quantized(graph.Input[0].Name)) AddPair(graph.Input[0].Name);
        foreach (var node in graph.Node)
        {
            var copy = node.Clone();
            for (int i = 0; i < copy.Input.Count; i++)
                if (renamed.TryGetValue(copy.Input[i], out var dq)) copy.Input[i] = dq;
            if (copy.OpType == "Conv") QuantizeWeights(graph, initializers, copy, parameters[node.Input[0]].Scale, nodes);
            if (graphOutputs.Contains(copy.Output[0])) copy.Output[0] += "_float";
            nodes.Add(copy);
            if (Quantized(node.Output[0])) AddPair(node.Output[0]);
        }
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        return qdq;
    }

    /// <summary>Per-output-channel symmetric int8 weights (scale max|w| / 127) and the int32 bias, each behind a DequantizeLinear.</summary>
    private static void QuantizeWeights(GraphProto graph, Dictionary<string, TensorProto> initializers, NodeProto conv, float inputScale, List<NodeProto> nodes)
    {
        var weights = initializers[conv.Input[1]];
        float[] w = ReadFloats(weights);
        float[] b = ReadFloats(initializers[conv.Input[2]]);
        int channels = (int)weights.Dims[0], perChannel = w.Length / channels;
        var q = new byte[w.Length];
        var scales = new float[channels];
        var biasScales = new float[channels];
        var bias = new int[channels];
        for (int m = 0; m < channels; m++)
        {
            float largest = 0;
            for (int i = 0; i < perChannel; i++) largest = Math.Max(largest, Math.Abs(w[m * perChannel + i]));
            scales[m] = largest > 0 ? largest / 127f : 1f;
            for (int i = 0; i < perChannel; i++)
                q[m * perChannel + i] = (byte)(sbyte)Math.Clamp(Math.Round(w[m * perChannel + i] / scales[m], MidpointRounding.ToEven), -127, 127);
            biasScales[m] = inputScale * scales[m];
            bias[m] = (int)Math.Round(b[m] / biasScales[m], MidpointRounding.ToEven);
        }
        string name = conv.Input[1];
        string wq = Add(graph, Tensor(name + "_quantized", DataType.Int8, weights.Dims.ToArray(), q));
        string ws = Add(graph, Tensor(name + "_scale", DataType.Float, [channels], Raw(scales)));
        string wz = Add(graph, Tensor(name + "_zero_point", DataType.Int8, [channels], new byte[channels]));
        nodes.Add(Node("DequantizeLinear", [wq, ws, wz], name + "_dq", axis: 0));
        string bq = Add(graph, Tensor(conv.Input[2] + "_quantized", DataType.Int32, [channels], Raw(bias)));
        string bs = Add(graph, Tensor(conv.Input[2] + "_scale", DataType.Float, [channels], Raw(biasScales)));
        string bz = Add(graph, Tensor(conv.Input[2] + "_zero_point", DataType.Int32, [channels], new byte[channels * 4]));
        nodes.Add(Node("DequantizeLinear", [bq, bs, bz], conv.Input[2] + "_dq", axis: 0));
        graph.Initializer.Remove(initializers[conv.Input[1]]);
        graph.Initializer.Remove(initializers[conv.Input[2]]);
        conv.Input[1] = name + "_dq";
        conv.Input[2] += "_dq";
    }

    private static void Observe(Dictionary<string, (float Min, float Max)> ranges, string name, ReadOnlySpan<float> values)
    {
        var (min, max) = ranges.GetValueOrDefault(name, (float.PositiveInfinity, float.NegativeInfinity));
        foreach (float v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        ranges[name] = (min, max);
    }

    private static NodeProto Node(string op, string[] inputs, string output, int? axis = null)
    {
        var node = new NodeProto { OpType = op, Name = output + "_node" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        if (axis is { } a) node.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = a });
        return node;
    }

    private static string Add(GraphProto graph, TensorProto tensor)
    {
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    private static TensorProto Tensor(string name, DataType type, long[] dims, byte[] raw)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static float[] ReadFloats(TensorProto tensor) =>
        tensor.RawData.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray() : tensor.FloatData.ToArray();

    private static byte[] Raw<T>(T[] values) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
