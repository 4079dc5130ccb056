using System.Text.Json;
using Google.Protobuf;
using Quantize.Core.Inspection;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Core.Tests.Inspection;

/// <summary>
/// The summary of a small ONNX model built here; every expectation is worked out by hand from the
/// model below (see the comments), not taken from the code under test.
/// </summary>
public class OnnxSummaryTests
{
    /// <summary>
    /// Stored tensors (name: dtype shape = elements, bytes):
    /// w int8 [4,3] = 12, 12; w_scale float32 [] = 1, 4; w_zp int8 [] = 1, 1; big float32 [16,16] = 256, 1024;
    /// nibbles uint4 [5] = 5, 3; bias_a float32 [3] = 3, 12; bias_b float32 [3] = 3, 12;
    /// c (Constant) float32 [2] = 2, 8; else_init (in the If's else branch) int64 [2] = 2, 16.
    /// </summary>
    internal static ModelProto BuildModel()
    {
        var graph = new GraphProto { Name = "g" };
        graph.Initializer.Add(Tensor("w", DataType.Int8, [4, 3], 12));
        graph.Initializer.Add(Tensor("w_scale", DataType.Float, [], 4));
        graph.Initializer.Add(Tensor("w_zp", DataType.Int8, [], 1));
        graph.Initializer.Add(Tensor("big", DataType.Float, [16, 16], 1024));
        graph.Initializer.Add(Tensor("nibbles", DataType.Uint4, [5], 3));
        graph.Initializer.Add(Tensor("bias_a", DataType.Float, [3], 12));
        graph.Initializer.Add(Tensor("bias_b", DataType.Float, [3], 12));

        graph.Input.Add(TensorValue("x", DataType.Float, Param("batch"), Fixed(3), new TensorShapeProto.Types.Dimension()));
        graph.Input.Add(TensorValue("w", DataType.Int8, Fixed(4), Fixed(3))); // also an initializer: not an input
        graph.Input.Add(new ValueInfoProto
        {
            Name = "s",
            Type = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = TensorType(DataType.Float) } },
        });
        graph.Input.Add(new ValueInfoProto
        {
            Name = "opt",
            Type = new TypeProto { OptionalType = new TypeProto.Types.Optional { ElemType = TensorType(DataType.Int64) } },
        });
        graph.Input.Add(new ValueInfoProto { Name = "u", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor() } });
        graph.Input.Add(TensorValue("flag", DataType.Bool));
        graph.Output.Add(TensorValue("y", DataType.Float, Param("batch"), Fixed(2)));

        graph.Node.Add(Node("DequantizeLinear", "", ["w", "w_scale", "w_zp"], ["wd"]));
        graph.Node.Add(Node("MatMul", "", ["x", "wd"], ["h"]));
        graph.Node.Add(Node("MatMul", "", ["h", "big"], ["h2"]));
        graph.Node.Add(Node("MatMulNBits", "com.microsoft", ["h2", "nibbles"], ["h3"]));
        graph.Node.Add(Node("QuickGelu", "com.microsoft", ["h3"], ["h4"])); // a Q-op that does not quantize
        graph.Node.Add(Node("LabelEncoder", "ai.onnx.ml", ["h4"], ["h5"]));
        graph.Node.Add(Node("Relu", "ai.onnx", ["h5"], ["h6"])); // the default domain spelled out

        var thenBranch = new GraphProto { Name = "then" };
        thenBranch.Node.Add(Node("QuantizeLinear", "", ["h6", "w_scale", "w_zp"], ["tq"]));
        thenBranch.Node.Add(Node("Add", "", ["tq", "bias_a"], ["t"]));
        var loopBody = new GraphProto { Name = "body" };
        loopBody.Node.Add(Node("Sub", "", ["h6", "bias_b"], ["l"]));
        var elseBranch = new GraphProto { Name = "else" };
        elseBranch.Initializer.Add(Tensor("else_init", DataType.Int64, [2], 16));
        elseBranch.Node.Add(Node("Add", "", ["h6", "bias_b"], ["e"]));
        var loop = Node("Loop", "", ["", ""], ["lo"]);
        loop.Attribute.Add(new AttributeProto { Name = "body", G = loopBody });
        elseBranch.Node.Add(loop);
        var ifNode = Node("If", "", ["flag"], ["y"]);
        ifNode.Attribute.Add(new AttributeProto { Name = "then_branch", G = thenBranch });
        ifNode.Attribute.Add(new AttributeProto { Name = "else_branch", G = elseBranch });
        graph.Node.Add(ifNode);

        var constant = Node("Constant", "", [], ["c"]);
        constant.Attribute.Add(new AttributeProto { Name = "value", T = Tensor("", DataType.Float, [2], 8) });
        graph.Node.Add(constant);

        var model = new ModelProto { IrVersion = 9, ProducerName = "handmade", ProducerVersion = "1.0", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx.ml", Version = 3 });
        return model;
    }

    private static ModelSummary Summary() => ModelSummary.Create(new OnnxModel(BuildModel(), "handmade.onnx"));

    [Fact]
    public void Model_fields_and_opsets_default_domain_first()
    {
        var s = Summary();
        Assert.Equal(ModelFormat.Onnx, s.Format);
        Assert.Equal("onnx", s.FormatName);
        Assert.Equal(9, s.NodeCount);
        Assert.Equal(new OnnxDetails(9, "handmade", "1.0", s.Onnx!.Opsets, "g"), s.Onnx);
        Assert.Equal([new OpsetVersion("ai.onnx", 17), new OpsetVersion("ai.onnx.ml", 3), new OpsetVersion("com.microsoft", 1)], s.Onnx.Opsets);
        Assert.Null(s.ControlEdges);
    }

    [Fact]
    public void Inputs_leave_out_initializers_and_describe_types_and_symbolic_dims()
    {
        var s = Summary();
        Assert.Equal(["x", "s", "opt", "u", "flag"], s.Inputs.Select(v => v.Name));
        Assert.Equal(["float32", "seq(float32)", "optional(int64)", "unknown", "bool"], s.Inputs.Select(v => v.Dtype));
        Assert.Equal([ShapeDimension.Symbolic("batch"), ShapeDimension.Fixed(3), ShapeDimension.Unknown], s.Inputs[0].Shape!);
        Assert.Null(s.Inputs[1].Shape);
        Assert.Null(s.Inputs[3].Shape);
        Assert.Empty(s.Inputs[4].Shape!);
        var output = Assert.Single(s.Outputs);
        Assert.Equal("y", output.Name);
        Assert.Equal("batch,2", string.Join(",", output.Shape!));
    }

    [Fact]
    public void Ops_are_keyed_by_domain_and_sorted_by_count_then_name()
    {
        var s = Summary();
        Assert.Equal(
            [
                new OpCount("MatMul", 2), new OpCount("Constant", 1), new OpCount("DequantizeLinear", 1), new OpCount("If", 1),
                new OpCount("Relu", 1), new OpCount("ai.onnx.ml.LabelEncoder", 1), new OpCount("com.microsoft.MatMulNBits", 1),
                new OpCount("com.microsoft.QuickGelu", 1),
            ],
            s.Ops);
        // Then branch: QuantizeLinear, Add; else branch: Add, Loop; the Loop's body: Sub.
        Assert.Equal([new OpCount("Add", 2), new OpCount("Loop", 1), new OpCount("QuantizeLinear", 1), new OpCount("Sub", 1)], s.SubgraphOps);
    }

    [Fact]
    public void Parameters_and_weights_add_up_every_stored_tensor()
    {
        var s = Summary();
        Assert.Equal(9, s.StoredTensors);
        Assert.Equal(12 + 1 + 1 + 256 + 5 + 3 + 3 + 2 + 2, s.Parameters);
        Assert.Equal(12 + 4 + 1 + 1024 + 3 + 12 + 12 + 8 + 16, s.WeightBytes);
        Assert.Equal(
            [
                new DtypeTotals("float32", 5, 1 + 256 + 3 + 3 + 2, 4 + 1024 + 12 + 12 + 8),
                new DtypeTotals("int64", 1, 2, 16),
                new DtypeTotals("int8", 2, 13, 13),
                new DtypeTotals("uint4", 1, 5, 3),
            ],
            s.ParametersByDtype);
    }

    [Fact]
    public void Largest_weights_are_ordered_by_bytes_then_name()
    {
        var s = Summary();
        // w, bias_a and bias_b all hold 12 bytes: by name, although w comes first in the model.
        Assert.Equal(["big", "else_init", "bias_a", "bias_b", "w", "c", "w_scale", "nibbles", "w_zp"], s.LargestWeights.Select(w => w.Name));
        Assert.Equal(new long[] { 16, 16 }, s.LargestWeights[0].Shape);
        Assert.Equal(("float32", 256L, 1024L), (s.LargestWeights[0].Dtype, s.LargestWeights[0].Elements, s.LargestWeights[0].Bytes));
    }

    [Fact]
    public void Quantized_lists_low_bit_tensors_and_quantization_ops_of_all_graphs()
    {
        var q = Summary().Quantized;
        Assert.Equal(3, q.TensorCount);
        Assert.Equal(["w", "w_zp", "nibbles"], q.TensorNames);
        Assert.Equal([new OpCount("DequantizeLinear", 1), new OpCount("QuantizeLinear", 1), new OpCount("com.microsoft.MatMulNBits", 1)], q.Ops);
    }

    [Fact]
    public void Quantized_tensor_names_are_capped_but_counted()
    {
        var model = BuildModel();
        for (int i = 0; i < 25; i++) model.Graph.Initializer.Add(Tensor($"q{i:00}", DataType.Uint8, [2], 2));
        var q = ModelSummary.Create(new OnnxModel(model)).Quantized;
        Assert.Equal(3 + 25, q.TensorCount);
        Assert.Equal(["w", "w_zp", "nibbles", .. Enumerable.Range(0, 17).Select(i => $"q{i:00}")], q.TensorNames);
    }

    [Fact]
    public void Json_has_the_documented_keys_in_order_and_mixed_shape_items()
    {
        using var doc = JsonDocument.Parse(Summary().ToJson());
        var root = doc.RootElement;
        Assert.Equal(
            ["format", "nodeCount", "irVersion", "producerName", "producerVersion", "opsets", "graphName", "inputs", "outputs",
             "ops", "subgraphOps", "parameters", "weightBytes", "parametersByDtype", "largestWeights", "quantized"],
            root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("onnx", root.GetProperty("format").GetString());
        Assert.Equal(["ai.onnx", "ai.onnx.ml", "com.microsoft"], root.GetProperty("opsets").EnumerateObject().Select(p => p.Name));
        Assert.Equal(17, root.GetProperty("opsets").GetProperty("ai.onnx").GetInt64());

        var x = root.GetProperty("inputs")[0];
        Assert.Equal("""["batch",3,"?"]""", x.GetProperty("shape").GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""));
        Assert.Equal(JsonValueKind.Null, root.GetProperty("inputs")[1].GetProperty("shape").ValueKind);

        Assert.Equal("MatMul", root.GetProperty("ops").EnumerateObject().First().Name);
        Assert.Equal(1, root.GetProperty("ops").GetProperty("com.microsoft.MatMulNBits").GetInt32());
        Assert.Equal(2, root.GetProperty("subgraphOps").GetProperty("Add").GetInt32());
        Assert.Equal(1092, root.GetProperty("weightBytes").GetInt64());
        Assert.Equal(13, root.GetProperty("parametersByDtype").GetProperty("int8").GetProperty("elements").GetInt64());
        Assert.Equal(["name", "dtype", "shape", "elements", "bytes"], root.GetProperty("largestWeights")[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["tensors", "tensorNames", "ops"], root.GetProperty("quantized").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void Text_reads_like_summarize_graph()
    {
        string text = Summary().ToText();
        Assert.Contains("Opsets: ai.onnx 17, ai.onnx.ml 3, com.microsoft 1\n", text);
        Assert.Contains("Found 5 possible inputs:\n  (name=x, type=float32, shape=[batch,3,?])\n", text);
        Assert.Contains("  (name=s, type=seq(float32), shape=unknown)\n", text);
        Assert.Contains("Op types used: 2 MatMul, 1 Constant, 1 DequantizeLinear,", text);
        Assert.Contains("Op types in subgraphs: 2 Add, 1 Loop, 1 QuantizeLinear, 1 Sub\n", text);
        Assert.Contains("Found 285 parameters in 9 stored tensors, 1.07 KiB of weights\n", text);
        Assert.Contains("Quantized tensors: 3 (w, w_zp, nibbles)\n", text);
        Assert.DoesNotContain("control edges", text);
    }

    internal static TensorProto Tensor(string name, DataType type, long[] dims, int bytes)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(new byte[bytes]) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static TypeProto TensorType(DataType type) => new() { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type } };

    private static ValueInfoProto TensorValue(string name, DataType type, params TensorShapeProto.Types.Dimension[] dims)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        tensorType.Shape.Dim.AddRange(dims);
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    private static TensorShapeProto.Types.Dimension Fixed(long size) => new() { DimValue = size };

    private static TensorShapeProto.Types.Dimension Param(string name) => new() { DimParam = name };

    private static NodeProto Node(string op, string domain, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }
}
