using System.Text.Json;
using Google.Protobuf;
using Quantize.Core.Inspection;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Core.Tests.Inspection;

/// <summary>The summary of a small GraphDef built here; expectations are worked out by hand from the graph.</summary>
public class GraphDefSummaryTests
{
    /// <summary>
    /// 14 nodes. Consts: w float [4,2] (32 bytes), wq quint8 [4,2] (8), unused int32 [] (4), dim int32 [] (4).
    /// Nothing consumes: k (Placeholder), unused (Const), init (NoOp), am, dq, rq, cast.
    /// Control inputs: mm reads ^init, cast reads ^k.
    /// </summary>
    internal static GraphDef BuildGraph()
    {
        var graph = new GraphDef();
        graph.Node.Add(Placeholder("x", DataType.DtFloat, Shape(-1, 4)));
        graph.Node.Add(Placeholder("k", DataType.DtFloat, new TensorShapeProto { UnknownRank = true }));
        graph.Node.Add(Placeholder("s", DataType.DtString, Shape()));
        graph.Node.Add(Const("w", DataType.DtFloat, Shape(4, 2), 32));
        graph.Node.Add(Const("wq", DataType.DtQuint8, Shape(4, 2), 8));
        graph.Node.Add(Const("unused", DataType.DtInt32, Shape(), 4));
        graph.Node.Add(Node("init", "NoOp"));
        var mm = Node("mm", "MatMul", "x", "w:0", "^init");
        mm.Attr["T"] = new AttrValue { Type = DataType.DtFloat };
        mm.Attr["_output_shapes"] = OutputShapes(Shape(-1, 2));
        graph.Node.Add(mm);
        var am = Node("am", "ArgMax", "mm", "dim");
        am.Attr["T"] = new AttrValue { Type = DataType.DtFloat };
        am.Attr["output_type"] = new AttrValue { Type = DataType.DtInt64 };
        am.Attr["_output_shapes"] = OutputShapes(Shape(-1));
        graph.Node.Add(am);
        graph.Node.Add(Const("dim", DataType.DtInt32, Shape(), 4));
        var q = Node("q", "QuantizeV2", "mm", "dim", "dim");
        q.Attr["T"] = new AttrValue { Type = DataType.DtQuint8 };
        graph.Node.Add(q);
        var dq = Node("dq", "Dequantize", "wq", "dim", "dim");
        dq.Attr["T"] = new AttrValue { Type = DataType.DtQuint8 };
        graph.Node.Add(dq);
        var rq = Node("rq", "Requantize", "q:0", "q:1", "q:2", "dim", "dim");
        rq.Attr["Tinput"] = new AttrValue { Type = DataType.DtQint32 };
        rq.Attr["out_type"] = new AttrValue { Type = DataType.DtQuint8 };
        graph.Node.Add(rq);
        var cast = Node("cast", "Cast", "mm", "^k");
        cast.Attr["SrcT"] = new AttrValue { Type = DataType.DtFloat };
        cast.Attr["DstT"] = new AttrValue { Type = DataType.DtInt32 };
        graph.Node.Add(cast);
        return graph;
    }

    private static ModelSummary Summary() => ModelSummary.Create(new GraphDefModel(BuildGraph(), "handmade.pb"));

    [Fact]
    public void Inputs_are_the_placeholders_with_dtype_and_shape()
    {
        var s = Summary();
        Assert.Equal(ModelFormat.GraphDef, s.Format);
        Assert.Null(s.Onnx);
        Assert.Equal(14, s.NodeCount);
        Assert.Equal(["x", "k", "s"], s.Inputs.Select(v => v.Name));
        Assert.Equal(["float32", "float32", "string"], s.Inputs.Select(v => v.Dtype));
        Assert.Equal([ShapeDimension.Unknown, ShapeDimension.Fixed(4)], s.Inputs[0].Shape!);
        Assert.Null(s.Inputs[1].Shape);
        Assert.Empty(s.Inputs[2].Shape!);
    }

    [Fact]
    public void Outputs_are_unconsumed_nodes_but_consts_noops_and_placeholders()
    {
        var s = Summary();
        Assert.Equal(["am", "dq", "rq", "cast"], s.Outputs.Select(v => v.Name));
        // ArgMax: output_type; Dequantize: always float; Requantize: out_type; Cast: DstT.
        Assert.Equal(["int64", "float32", "quint8", "int32"], s.Outputs.Select(v => v.Dtype));
        Assert.Equal([ShapeDimension.Unknown], s.Outputs[0].Shape!);
        Assert.Null(s.Outputs[1].Shape);
        Assert.Equal(2, s.ControlEdges);
    }

    [Fact]
    public void Ops_weights_and_quantization()
    {
        var s = Summary();
        Assert.Equal(
            [
                new OpCount("Const", 4), new OpCount("Placeholder", 3), new OpCount("ArgMax", 1), new OpCount("Cast", 1),
                new OpCount("Dequantize", 1), new OpCount("MatMul", 1), new OpCount("NoOp", 1), new OpCount("QuantizeV2", 1),
                new OpCount("Requantize", 1),
            ],
            s.Ops);
        Assert.Empty(s.SubgraphOps);
        Assert.Equal(8 + 8 + 1 + 1, s.Parameters);
        Assert.Equal(32 + 8 + 4 + 4, s.WeightBytes);
        Assert.Equal([new DtypeTotals("float32", 1, 8, 32), new DtypeTotals("int32", 2, 2, 8), new DtypeTotals("quint8", 1, 8, 8)], s.ParametersByDtype);
        Assert.Equal(["w", "wq", "dim", "unused"], s.LargestWeights.Select(w => w.Name));
        Assert.Equal(1, s.Quantized.TensorCount);
        Assert.Equal(["wq"], s.Quantized.TensorNames);
        Assert.Equal([new OpCount("Dequantize", 1), new OpCount("QuantizeV2", 1), new OpCount("Requantize", 1)], s.Quantized.Ops);
    }

    [Fact]
    public void Json_ends_with_control_edges_and_has_no_onnx_fields()
    {
        using var doc = JsonDocument.Parse(Summary().ToJson());
        var root = doc.RootElement;
        Assert.Equal(
            ["format", "nodeCount", "inputs", "outputs", "ops", "subgraphOps", "parameters", "weightBytes", "parametersByDtype",
             "largestWeights", "quantized", "controlEdges"],
            root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("graphdef", root.GetProperty("format").GetString());
        Assert.Equal(2, root.GetProperty("controlEdges").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("inputs")[1].GetProperty("shape").ValueKind);
        Assert.Equal("?", root.GetProperty("inputs")[0].GetProperty("shape")[0].GetString());
        Assert.Equal(4, root.GetProperty("inputs")[0].GetProperty("shape")[1].GetInt64());
    }

    [Fact]
    public void Text_lists_inputs_outputs_and_control_edges()
    {
        string text = Summary().ToText();
        Assert.Contains("Format: TensorFlow GraphDef\n", text);
        Assert.Contains("Found 3 possible inputs:\n  (name=x, type=float32, shape=[?,4])\n  (name=k, type=float32, shape=unknown)\n  (name=s, type=string, shape=[])\n", text);
        Assert.Contains("Found 4 possible outputs:\n  (name=am, type=int64, shape=[?])\n", text);
        Assert.Contains("Op types used: 4 Const, 3 Placeholder, 1 ArgMax,", text);
        Assert.Contains("Quantization ops: 1 Dequantize, 1 QuantizeV2, 1 Requantize\n", text);
        Assert.EndsWith("Found 2 control edges\n", text);
    }

    private static TensorShapeProto Shape(params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dim { Size = d });
        return shape;
    }

    private static AttrValue OutputShapes(TensorShapeProto shape)
    {
        var list = new AttrValue.Types.ListValue();
        list.Shape.Add(shape);
        return new AttrValue { List = list };
    }

    private static NodeDef Node(string name, string op, params string[] inputs)
    {
        var node = new NodeDef { Name = name, Op = op };
        node.Input.AddRange(inputs);
        return node;
    }

    private static NodeDef Placeholder(string name, DataType dtype, TensorShapeProto shape)
    {
        var node = Node(name, "Placeholder");
        node.Attr["dtype"] = new AttrValue { Type = dtype };
        node.Attr["shape"] = new AttrValue { Shape = shape };
        return node;
    }

    private static NodeDef Const(string name, DataType dtype, TensorShapeProto shape, int bytes)
    {
        var node = Node(name, "Const");
        node.Attr["dtype"] = new AttrValue { Type = dtype };
        node.Attr["value"] = new AttrValue
        {
            Tensor = new TensorProto { Dtype = dtype, TensorShape = shape, TensorContent = ByteString.CopyFrom(new byte[bytes]) },
        };
        return node;
    }
}
