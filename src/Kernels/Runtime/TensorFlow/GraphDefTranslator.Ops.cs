using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;
using TfNode = Quantize.Kernels.Models.TensorFlow.NodeDef;

namespace Quantize.Kernels.Runtime.TensorFlow;

internal sealed partial class GraphDefTranslator
{
    private static readonly Dictionary<string, string> SameOps = new(StringComparer.Ordinal)
    {
        ["Identity"] = "Identity", ["StopGradient"] = "Identity", ["Snapshot"] = "Identity", ["PreventGradient"] = "Identity",
        ["Add"] = "Add", ["AddV2"] = "Add", ["BiasAdd"] = "Add", ["Sub"] = "Sub", ["Mul"] = "Mul", ["RealDiv"] = "Div",
        ["Maximum"] = "Max", ["Minimum"] = "Min", ["Relu"] = "Relu", ["Sigmoid"] = "Sigmoid", ["Tanh"] = "Tanh",
        ["Floor"] = "Floor", ["Sqrt"] = "Sqrt", ["Exp"] = "Exp", ["Neg"] = "Neg", ["Abs"] = "Abs", ["Reciprocal"] = "Reciprocal",
        ["Log"] = "Log",
    };

    private static readonly Dictionary<string, string> Reductions = new(StringComparer.Ordinal)
    {
        ["Mean"] = "ReduceMean", ["Sum"] = "ReduceSum", ["Max"] = "ReduceMax", ["Min"] = "ReduceMin",
    };

    /// <summary>TensorFlow's quantized ops, run by operators of <see cref="Domain"/> with the same inputs and outputs.</summary>
    private static readonly HashSet<string> QuantizedOps = new(StringComparer.Ordinal)
    {
        "QuantizeV2", "QuantizedMatMul", "QuantizedConv2D", "QuantizedRelu", "QuantizedRelu6", "Requantize", "RequantizationRange",
        "QuantizedAdd", "QuantizedMul", "RandomUniform",
    };

    private void TranslateNode(TfNode node)
    {
        if (SameOps.TryGetValue(node.Op, out string? onnxOp))
        {
            if (node.Op == "BiasAdd") RequireNhwc(node);
            _b.Node(onnxOp, node.Name, Enumerable.Range(0, InputCount(node)).Select(i => In(node, i)), [Out(node)]);
            return;
        }
        if (Reductions.TryGetValue(node.Op, out string? reduction))
        {
            var reduce = _b.Node(reduction, node.Name, [In(node, 0), AsInt64(node, In(node, 1))], [Out(node)]);
            OnnxGraphBuilder.Attribute(reduce, "keepdims", Bool(node, "keep_dims") ? 1L : 0L);
            return;
        }
        if (QuantizedOps.Contains(node.Op))
        {
            var custom = _b.Node(node.Op, node.Name, Enumerable.Range(0, InputCount(node)).Select(i => In(node, i)),
                Enumerable.Range(0, OutputCount(node.Op)).Select(i => Out(node, i)), Domain);
            CopyAttributes(node, custom);
            return;
        }
        switch (node.Op)
        {
            case "Const": TranslateConst(node); break;
            case "Placeholder": throw Unsupported(node, "the placeholder is not fed; feed it");
            case "PlaceholderWithDefault": _b.Node("Identity", node.Name, [In(node, 0)], [Out(node)]); break;
            case "NoOp": break;
            case "Relu6":
                _b.Node("Clip", node.Name, [In(node, 0), _b.Float("zero", 0), _b.Float("six", 6)], [Out(node)]);
                break;
            case "Rsqrt":
                _b.Node("Reciprocal", node.Name, [_b.Apply("Sqrt", node.Name, In(node, 0))], [Out(node)]);
                break;
            case "Softmax":
            {
                var softmax = _b.Node("Softmax", node.Name, [In(node, 0)], [Out(node)]);
                OnnxGraphBuilder.Attribute(softmax, "axis", -1L);
                break;
            }
            case "MatMul": TranslateMatMul(node); break;
            case "Conv2D": TranslateConv2D(node); break;
            case "DepthwiseConv2dNative": TranslateDepthwise(node); break;
            case "MaxPool" or "AvgPool": TranslatePool(node, node.Op == "MaxPool" ? "MaxPool" : "AveragePool", In(node, 0), Out(node)); break;
            case "QuantizedMaxPool":
                TranslatePool(node, "MaxPool", In(node, 0), Out(node));
                _b.Node("Identity", node.Name, [In(node, 1)], [Out(node, 1)]);
                _b.Node("Identity", node.Name, [In(node, 2)], [Out(node, 2)]);
                break;
            case "QuantizedReshape":
                _b.Node("Reshape", node.Name, [In(node, 0), AsInt64(node, In(node, 1))], [Out(node)]);
                _b.Node("Identity", node.Name, [In(node, 2)], [Out(node, 1)]);
                _b.Node("Identity", node.Name, [In(node, 3)], [Out(node, 2)]);
                break;
            case "Dequantize": TranslateDequantize(node); break;
            case "ArgMax":
            {
                long axis = ConstantIntegers(node, 1)[0];
                string raw = _b.Fresh(node.Name + "/ArgMax");
                var argmax = _b.Node("ArgMax", node.Name, [In(node, 0)], [raw]);
                OnnxGraphBuilder.Attribute(argmax, "axis", axis);
                OnnxGraphBuilder.Attribute(argmax, "keepdims", 0L);
                var type = GraphDefElementTypes.ToElementType(Type(node, "output_type", DataType.DtInt64));
                _b.Node("Cast", node.Name, [raw], [Out(node)]).Attribute.Add(new AttributeProto
                    { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = OnnxElementTypes.ToOnnx(type) });
                break;
            }
            case "ConcatV2":
            {
                int n = InputCount(node) - 1;
                var concat = _b.Node("Concat", node.Name, Enumerable.Range(0, n).Select(i => In(node, i)), [Out(node)]);
                OnnxGraphBuilder.Attribute(concat, "axis", ConstantIntegers(node, n)[0]);
                break;
            }
            case "Reshape": _b.Node("Reshape", node.Name, [In(node, 0), AsInt64(node, In(node, 1))], [Out(node)]); break;
            case "Squeeze":
            {
                long[] axes = Ints(node, "squeeze_dims");
                if (axes.Length == 0) axes = Ints(node, "axis");
                _b.Node("Squeeze", node.Name, axes.Length == 0 ? [In(node, 0)] : [In(node, 0), _b.Int64s("axes", axes)], [Out(node)]);
                break;
            }
            case "ExpandDims": _b.Node("Unsqueeze", node.Name, [In(node, 0), _b.Int64s("axes", ConstantIntegers(node, 1)[0])], [Out(node)]); break;
            case "Pad":
            {
                long[] paddings = ConstantIntegers(node, 1);
                int rank = paddings.Length / 2;
                var pads = Enumerable.Range(0, rank).Select(d => paddings[2 * d]).Concat(Enumerable.Range(0, rank).Select(d => paddings[2 * d + 1])).ToArray();
                _b.Node("Pad", node.Name, [In(node, 0), _b.Int64s("pads", pads)], [Out(node)]);
                break;
            }
            case "FusedBatchNorm" or "FusedBatchNormV2" or "FusedBatchNormV3": TranslateBatchNorm(node); break;
            case "Shape":
            {
                string shape = _b.Apply("Shape", node.Name, In(node, 0));
                var type = GraphDefElementTypes.ToElementType(Type(node, "out_type", DataType.DtInt32));
                _b.Node("Cast", node.Name, [shape], [Out(node)]).Attribute.Add(new AttributeProto
                    { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = OnnxElementTypes.ToOnnx(type) });
                break;
            }
            case "Cast":
            {
                var type = RuntimeType(GraphDefElementTypes.ToElementType(Type(node, "DstT")));
                _b.Node("Cast", node.Name, [In(node, 0)], [Out(node)]).Attribute.Add(new AttributeProto
                    { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = OnnxElementTypes.ToOnnx(type) });
                break;
            }
            case "StridedSlice":
            {
                var slice = _b.Node("StridedSlice", node.Name, [In(node, 0)], [Out(node)], Domain);
                OnnxGraphBuilder.Attribute(slice, "begin", ConstantIntegers(node, 1));
                OnnxGraphBuilder.Attribute(slice, "end", ConstantIntegers(node, 2));
                OnnxGraphBuilder.Attribute(slice, "strides", ConstantIntegers(node, 3));
                foreach (string mask in new[] { "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask" })
                    OnnxGraphBuilder.Attribute(slice, mask, Int(node, mask, 0));
                break;
            }
            case "Pack":
            {
                long axis = Int(node, "axis", 0);
                var parts = Enumerable.Range(0, InputCount(node)).Select(i => _b.Apply("Unsqueeze", node.Name, In(node, i), _b.Int64s("axes", axis))).ToArray();
                OnnxGraphBuilder.Attribute(_b.Node("Concat", node.Name, parts, [Out(node)]), "axis", axis);
                break;
            }
            case "Unpack":
            {
                long axis = Int(node, "axis", 0);
                int count = (int)Int(node, "num", 1);
                var parts = Enumerable.Range(0, count).Select(_ => _b.Fresh(node.Name + "/part")).ToArray();
                OnnxGraphBuilder.Attribute(_b.Node("Split", node.Name, [In(node, 0)], parts), "axis", axis);
                for (int i = 0; i < count; i++) _b.Node("Squeeze", node.Name, [parts[i], _b.Int64s("axes", axis)], [Out(node, i)]);
                break;
            }
            case "Split":
            {
                int count = (int)Int(node, "num_split", 1);
                var split = _b.Node("Split", node.Name, [In(node, 1)], Enumerable.Range(0, count).Select(i => Out(node, i)));
                OnnxGraphBuilder.Attribute(split, "axis", ConstantIntegers(node, 0)[0]);
                break;
            }
            case "Fill": _b.Node("Expand", node.Name, [In(node, 1), AsInt64(node, In(node, 0))], [Out(node)]); break;
            default:
                throw Unsupported(node, $"Quantize.Kernels does not implement the TensorFlow op {node.Op}. To run the graph from a tensor after it, "
                    + "name that tensor in SessionOptions.GraphDefInputs (or feed it and fetch what you need)");
        }
    }

    private static int OutputCount(string op) => op switch
    {
        "QuantizeV2" or "QuantizedMatMul" or "QuantizedConv2D" or "QuantizedRelu" or "QuantizedRelu6" or "Requantize" or "QuantizedAdd" or "QuantizedMul" => 3,
        "RequantizationRange" => 2,
        _ => 1,
    };

    private static void CopyAttributes(TfNode node, NodeProto target)
    {
        foreach (var (name, value) in node.Attr)
        {
            switch (value.ValueCase)
            {
                case AttrValue.ValueOneofCase.I: OnnxGraphBuilder.Attribute(target, name, value.I); break;
                case AttrValue.ValueOneofCase.F: OnnxGraphBuilder.Attribute(target, name, value.F); break;
                case AttrValue.ValueOneofCase.B: OnnxGraphBuilder.Attribute(target, name, value.B ? 1L : 0L); break;
                case AttrValue.ValueOneofCase.S: OnnxGraphBuilder.Attribute(target, name, value.S.ToStringUtf8()); break;
                case AttrValue.ValueOneofCase.Type: OnnxGraphBuilder.Attribute(target, name, (long)value.Type); break;
                case AttrValue.ValueOneofCase.List when value.List.I.Count > 0: OnnxGraphBuilder.Attribute(target, name, value.List.I); break;
            }
        }
    }

    private void TranslateConst(TfNode node)
    {
        var tensor = GraphDefModel.ConstValue(node) ?? throw Unsupported(node, "it has no tensor value");
        var data = _model.ReadTensor(tensor, node.Name);
        if (data.ElementType == TensorElementType.String)
        {
            // String constants (file names, labels) are not runtime values here; a node that needs one fails on its own op.
            return;
        }
        _b.AddInitializer(Out(node), RuntimeType(data.ElementType), data.Shape.ToArray(), data.Bytes.ToArray());
    }

    /// <summary>
    /// Activations quantized at run time for weight-only graphs use 7 bits: the int8 kernel's byte quads then never
    /// saturate, so quantize_weights' full-range weights run there (the 16-bit pairs they would need are slower than
    /// fp32 on AVX2). Twice the activation step of 8 bits; the tests bound the error by it.
    /// </summary>
    private const long SevenBitActivations = 7;

    private void TranslateMatMul(TfNode node)
    {
        string a = In(node, 0), b = In(node, 1);
        if (Bool(node, "transpose_a")) a = Transpose(node, a, 1, 0);
        if (_options.UseIntegerKernels && QuantizedWeight(b) is { } weight)
        {
            var w = weight.Values;
            if (Bool(node, "transpose_b")) w = TransposeMatrix(w, weight.Rows, weight.Columns);
            int rows = Bool(node, "transpose_b") ? weight.Columns : weight.Rows;
            int columns = Bool(node, "transpose_b") ? weight.Rows : weight.Columns;
            if (!weight.PerChannel || Bool(node, "transpose_b") == (weight.Axis == 0))
            {
                List<string> inputs = [a, _b.Initializer(node.Name + "/w", weight.Type, [rows, columns], w), ZeroPoint(node, weight), Scales(node, weight)];
                string result = Out(node);
                if (_biases.TryGetValue(node.Name, out var bias))
                {
                    inputs.Add(bias.Bias);
                    result = Out(bias.Add);
                }
                var matmul = _b.Node("DynamicQuantizeMatMul", node.Name, inputs, [result], Planning.PlanBuilder.FusedDomain);
                // The graph says float MatMul on dequantized weights; how activations are quantized is ours to choose.
                OnnxGraphBuilder.Attribute(matmul, "activation_bits", SevenBitActivations);
                return;
            }
        }
        if (Bool(node, "transpose_b")) b = Transpose(node, b, 1, 0);
        _b.Node("MatMul", node.Name, [a, b], [Out(node)]);
    }

    private string ZeroPoint(TfNode node, QuantizedWeight weight) => weight.Type == TensorElementType.UInt8
        ? _b.Initializer(node.Name + "/w_zero_point", TensorElementType.UInt8, [], [weight.ZeroPoint])
        : _b.Initializer(node.Name + "/w_zero_point", TensorElementType.Int8, [], [0]);

    private string Scales(TfNode node, QuantizedWeight weight)
    {
        var bytes = new byte[weight.Scales.Length * 4];
        Buffer.BlockCopy(weight.Scales, 0, bytes, 0, bytes.Length);
        return _b.Initializer(node.Name + "/w_scale", TensorElementType.Float32, weight.Scales.Length == 1 ? [] : [weight.Scales.Length], bytes);
    }

    private static byte[] TransposeMatrix(byte[] values, int rows, int columns)
    {
        var result = new byte[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) result[c * rows + r] = values[r * columns + c];
        return result;
    }

    private void TranslateConv2D(TfNode node)
    {
        RequireNhwc(node);
        long[] strides = Ints(node, "strides"), dilations = Ints(node, "dilations");
        if (strides.Length == 4 && (strides[0] != 1 || strides[3] != 1)) throw Unsupported(node, "strides over the batch or channel axis");
        string padding = String(node, "padding", "VALID");
        if (padding is not ("SAME" or "VALID")) throw Unsupported(node, $"padding {padding} (only SAME and VALID)");
        string filter = In(node, 1);
        var inputs = new List<string> { In(node, 0), filter };
        if (_options.UseIntegerKernels && QuantizedWeight(filter) is { } weight && (!weight.PerChannel || weight.Axis == 3))
        {
            long[] dims = [.. weight.Shape];
            inputs[1] = _b.Initializer(node.Name + "/w", weight.Type, dims, weight.Values);
            inputs.Add(ZeroPoint(node, weight));
            inputs.Add(Scales(node, weight));
        }
        string result = Out(node);
        if (_biases.TryGetValue(node.Name, out var bias))
        {
            while (inputs.Count < 4) inputs.Add("");
            inputs.Add(bias.Bias);
            result = Out(bias.Add);
        }
        var conv = _b.Node("Conv2D", node.Name, inputs, [result], Domain);
        if (inputs.Count > 2 && inputs[2].Length > 0) OnnxGraphBuilder.Attribute(conv, "activation_bits", SevenBitActivations);
        OnnxGraphBuilder.Attribute(conv, "strides", strides.Length == 4 ? [strides[1], strides[2]] : [1L, 1L]);
        OnnxGraphBuilder.Attribute(conv, "dilations", dilations.Length == 4 ? [dilations[1], dilations[2]] : [1L, 1L]);
        OnnxGraphBuilder.Attribute(conv, "padding", padding);
    }

    private void TranslateDepthwise(TfNode node)
    {
        RequireNhwc(node);
        // The filter's shape must be known here: a float constant, or 8-bit weights behind a Dequantize (folded at load).
        var filterShape = (ConstantValue(In(node, 1)) is { ElementType: TensorElementType.Float32 } f ? f.Shape.ToArray() : null)
            ?? QuantizedWeight(In(node, 1))?.Shape
            ?? throw Unsupported(node, "the filter must be a constant (float, or quantized behind a Dequantize)");
        long kh = filterShape[0], kw = filterShape[1], channels = filterShape[2], multiplier = filterShape[3];
        long[] strides = Ints(node, "strides"), dilations = Ints(node, "dilations");
        // [kh, kw, C, M] -> [C*M, 1, kh, kw]: output channel c*M+m reads input channel c.
        string weight = _b.Apply("Reshape", node.Name, Transpose(node, In(node, 1), 2, 3, 0, 1), _b.Int64s("shape", channels * multiplier, 1, kh, kw));
        string output = _b.Fresh(node.Name + "/Conv");
        var conv = _b.Node("Conv", node.Name, [Transpose(node, In(node, 0), ToNchw), weight], [output]);
        OnnxGraphBuilder.Attribute(conv, "group", channels);
        OnnxGraphBuilder.Attribute(conv, "kernel_shape", [kh, kw]);
        OnnxGraphBuilder.Attribute(conv, "strides", strides.Length == 4 ? [strides[1], strides[2]] : [1L, 1L]);
        OnnxGraphBuilder.Attribute(conv, "dilations", dilations.Length == 4 ? [dilations[1], dilations[2]] : [1L, 1L]);
        OnnxGraphBuilder.Attribute(conv, "auto_pad", String(node, "padding", "VALID") == "SAME" ? "SAME_UPPER" : "VALID");
        var back = _b.Node("Transpose", node.Name, [output], [Out(node)]);
        OnnxGraphBuilder.Attribute(back, "perm", ToNhwc);
    }

    private void TranslatePool(TfNode node, string onnxOp, string input, string output)
    {
        RequireNhwc(node);
        long[] ksize = Ints(node, "ksize"), strides = Ints(node, "strides");
        if (ksize.Length != 4 || strides.Length != 4 || ksize[0] != 1 || ksize[3] != 1 || strides[0] != 1 || strides[3] != 1)
            throw Unsupported(node, "pooling windows and strides must be [1, h, w, 1]");
        string pooled = _b.Fresh(node.Name + "/" + onnxOp);
        var pool = _b.Node(onnxOp, node.Name, [Transpose(node, input, ToNchw)], [pooled]);
        OnnxGraphBuilder.Attribute(pool, "kernel_shape", [ksize[1], ksize[2]]);
        OnnxGraphBuilder.Attribute(pool, "strides", [strides[1], strides[2]]);
        OnnxGraphBuilder.Attribute(pool, "auto_pad", String(node, "padding", "VALID") == "SAME" ? "SAME_UPPER" : "VALID");
        var back = _b.Node("Transpose", node.Name, [pooled], [output]);
        OnnxGraphBuilder.Attribute(back, "perm", ToNhwc);
    }

    /// <summary>Inference batch norm on the last axis: x * a + b with a = scale / sqrt(var + eps), b = offset - mean * a (folded at load).</summary>
    private void TranslateBatchNorm(TfNode node)
    {
        RequireNhwc(node);
        if (ConstantValue(In(node, 3)) is { ElementCount: 0 })
            throw Unsupported(node, "batch statistics (training mode without a stored mean and variance)");
        string scale = In(node, 1), offset = In(node, 2), mean = In(node, 3), variance = In(node, 4);
        string a = _b.Apply("Div", node.Name, scale, _b.Apply("Sqrt", node.Name, _b.Apply("Add", node.Name, variance, _b.Float("epsilon", Float(node, "epsilon", 0.0001f)))));
        string b = _b.Apply("Sub", node.Name, offset, _b.Apply("Mul", node.Name, mean, a));
        _b.Node("Add", node.Name, [_b.Apply("Mul", node.Name, In(node, 0), a), b], [Out(node)]);
    }

    private void TranslateDequantize(TfNode node)
    {
        var dequantize = _b.Node("Dequantize", node.Name, [In(node, 0), In(node, 1), In(node, 2)], [Out(node)], Domain);
        OnnxGraphBuilder.Attribute(dequantize, "mode", String(node, "mode", "MIN_COMBINED"));
        OnnxGraphBuilder.Attribute(dequantize, "axis", Int(node, "axis", -1));
        OnnxGraphBuilder.Attribute(dequantize, "narrow_range", Bool(node, "narrow_range") ? 1L : 0L);
    }
}
