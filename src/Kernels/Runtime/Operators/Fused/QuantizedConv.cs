using System.Buffers;
using System.Runtime.InteropServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// DequantizeLinear(x) and DequantizeLinear(constant w) into Conv (bias, Relu/Clip) into QuantizeLinear, as one node
/// (see <see cref="Planning.QdqLinearFusion"/>; inputs in <see cref="QdqNodeInputs"/>): the exact int32 convolution
/// <c>sum (x - zx)(w - zw[m])</c> on <see cref="Int8Gemm"/> (8-bit patch rows x weights packed once at load), then
/// <see cref="QuantizedOutputStage"/> writes 8-bit values (or floats when no QuantizeLinear follows).
/// Depthwise convolutions (one input channel per group) run a direct integer loop instead.
/// </summary>
[OnnxOperator("QuantizedConv", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class QuantizedConv(WindowAttributes window, int group, int[] weightShape, PackedInt8Matrix[]? packed, int[]? depthwiseKernel,
    int zeroPoint, TensorElementType? inputType, QuantizedOutputStage stage) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        int group = (int)context.Int("group", 1);
        if (group <= 0) throw context.Unsupported($"group {group}");
        var w = QdqNodeInputs.Weights(context);
        int spatial = w.Rank - 2;
        if (spatial is < 1 or > WindowAttributes.MaxSpatialRank)
            throw context.Unsupported($"weights of shape {Tensor.Format(w.Shape)} (1 to {WindowAttributes.MaxSpatialRank} spatial axes are supported)");
        if (window.KernelShape is { } kernel && !kernel.AsSpan().SequenceEqual(w.Shape[2..]))
            throw context.Unsupported($"kernel_shape {Tensor.Format(kernel)} differs from the weights' {Tensor.Format(w.Shape[2..])}");
        int outputs = w.Shape[0], channelsPerGroup = w.Shape[1], taps = Tensor.CountElements(w.Shape[2..]);
        if (outputs % group != 0) throw context.Unsupported($"{outputs} output channels do not split into {group} groups");
        var (zeroPoint, inputType) = QdqNodeInputs.Activation(context);
        int[] weightZeroPoints = QdqNodeInputs.WeightZeroPoints(context, outputs);
        var stage = QdqNodeInputs.Stage(context, outputs);
        bool signed = w.ElementType == TensorElementType.Int8;
        var bytes = QuantizationInputs.Bytes(w);

        if (IsDepthwise(group, channelsPerGroup))
        {
            var kernelValues = new int[outputs * taps];
            for (int m = 0; m < outputs; m++)
            {
                int zw = weightZeroPoints.Length == 0 ? 0 : weightZeroPoints[weightZeroPoints.Length == 1 ? 0 : m];
                for (int t = 0; t < taps; t++)
                {
                    byte raw = bytes[m * taps + t];
                    kernelValues[m * taps + t] = (signed ? (sbyte)raw : raw) - zw;
                }
            }
            return new QuantizedConv(window, group, w.ShapeArray, null, kernelValues, zeroPoint, inputType, stage);
        }
        var packed = new PackedInt8Matrix[group];
        for (int g = 0; g < group; g++)
            packed[g] = ByteConvolutionLowering.PackWeights(bytes, signed, g, outputs / group, channelsPerGroup, taps, weightZeroPoints,
                ByteConvolutionLowering.SmallActivations(zeroPoint, inputType));
        return new QuantizedConv(window, group, w.ShapeArray, packed, null, zeroPoint, inputType, stage);
    }

    private static bool IsDepthwise(int group, int channelsPerGroup) => group > 1 && channelsPerGroup == 1;

    public override void Run(OperatorCall call)
    {
        var x = call.Input(QdqNodeInputs.X);
        string node = call.Context.Node;
        if (x.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8) || (inputType is { } expected && x.ElementType != expected))
            throw new InvalidOperationException($"{node}: the input is {x.ElementType.DisplayName()}, but its zero point is {inputType?.DisplayName() ?? "8-bit"}.");
        if (x.Rank != weightShape.Length)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(weightShape)} differ in rank.");
        int batch = x.Shape[0], channels = x.Shape[1], outputs = weightShape[0], channelsPerGroup = weightShape[1];
        if (channels != channelsPerGroup * group)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(weightShape)} do not fit {group} groups.");
        var g = window.Resolve(x.Shape[2..], weightShape.AsSpan(2), node);
        var y = call.Output(0, stage.OutputType, g.OutputShape(batch, outputs));
        if (depthwiseKernel is not null)
        {
            Depthwise(g, x, y, batch, channels, outputs, call.Context.DegreeOfParallelism);
            return;
        }
        Lowered(g, x, y, channels, outputs, call.Context.DegreeOfParallelism);
    }

    /// <summary>Per image and group, chunks of output pixels through <see cref="ByteConvolutionLowering.Run"/>, then the output stage and a transposed store.</summary>
    private void Lowered(WindowGeometry g, Tensor x, Tensor y, int channels, int outputs, int threads)
    {
        int pixels = g.OutputSize, outputsPerGroup = outputs / group;
        bool floats = stage.OutputType == TensorElementType.Float32;
        ByteConvolutionLowering.Run(g, x, channels, group, outputs, zeroPoint, packed!, threads, (acc, rows, n, gi, first) =>
        {
            int outputOffset = (n * outputs + gi * outputsPerGroup) * pixels;
            byte[] tile = ArrayPool<byte>.Shared.Rent(rows * outputsPerGroup * (floats ? sizeof(float) : 1));
            try
            {
                stage.WriteRows(acc, rows, outputsPerGroup, gi * outputsPerGroup, tile);
                if (floats)
                    ConvolutionLowering.Transpose(MemoryMarshal.Cast<byte, float>(tile.AsSpan(0, rows * outputsPerGroup * sizeof(float))), rows, outputsPerGroup,
                        y.AsSpan<float>()[(outputOffset + first)..], pixels);
                else
                    ConvolutionLowering.Transpose(tile.AsSpan(0, rows * outputsPerGroup), rows, outputsPerGroup, QuantizationInputs.Bytes(y)[(outputOffset + first)..], pixels);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(tile);
            }
        });
    }

    /// <summary>Depthwise: output channel m reads input channel m / (outputs per group) only, summed directly in int32.</summary>
    private void Depthwise(WindowGeometry g, Tensor x, Tensor y, int batch, int channels, int outputs, int threads)
    {
        int multiplier = outputs / group, taps = g.KernelSize, pixels = g.OutputSize, inSize = g.InputSize;
        int width = stage.OutputType == TensorElementType.Float32 ? sizeof(float) : 1;
        bool signed = x.ElementType == TensorElementType.Int8;
        var kernel = depthwiseKernel!;
        Pool.ForEachPlane(batch * outputs, pixels * taps, threads, plane =>
        {
            int n = plane / outputs, m = plane % outputs;
            int[] sums = ArrayPool<int>.Shared.Rent(pixels);
            try
            {
                var acc = sums.AsSpan(0, pixels);
                ByteConvolutionLowering.DepthwisePlane(g, QuantizationInputs.Bytes(x).Slice((n * channels + m / multiplier) * inSize, inSize), signed, zeroPoint, kernel.AsSpan(m * taps, taps), acc);
                var output = width == 1 ? QuantizationInputs.Bytes(y) : MemoryMarshal.AsBytes(y.AsSpan<float>());
                stage.WriteChannel(acc, m, output.Slice(plane * pixels * width, pixels * width));
            }
            finally
            {
                ArrayPool<int>.Shared.Return(sums);
            }
        });
    }
}
