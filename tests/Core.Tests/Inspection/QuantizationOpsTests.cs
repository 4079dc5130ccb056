using Quantize.Core.Inspection;

namespace Quantize.Core.Tests.Inspection;

public class QuantizationOpsTests
{
    [Theory]
    [InlineData("", "QuantizeLinear", true)]
    [InlineData("ai.onnx", "DequantizeLinear", true)]
    [InlineData("", "DynamicQuantizeLinear", true)]
    [InlineData("", "MatMulInteger", true)]
    [InlineData("", "ConvInteger", true)]
    [InlineData("", "QLinearConv", true)]
    [InlineData("", "QLinearMatMul", true)]
    [InlineData("", "MatMul", false)]
    [InlineData("", "QGemm", false)] // only com.microsoft has QGemm
    [InlineData("com.microsoft", "MatMulNBits", true)]
    [InlineData("com.microsoft", "QAttention", true)]
    [InlineData("com.microsoft", "QGemm", true)]
    [InlineData("com.microsoft", "QLinearAdd", true)]
    [InlineData("com.microsoft", "DynamicQuantizeMatMul", true)]
    [InlineData("com.microsoft", "QuickGelu", false)]
    [InlineData("com.microsoft", "Attention", false)]
    [InlineData("ai.onnx.ml", "QLinearConv", false)]
    public void Onnx(string domain, string op, bool expected) => Assert.Equal(expected, QuantizationOps.IsOnnx(domain, op));

    [Theory]
    [InlineData("QuantizeV2", true)]
    [InlineData("Dequantize", true)]
    [InlineData("Requantize", true)]
    [InlineData("RequantizationRange", true)]
    [InlineData("QuantizedConv2D", true)]
    [InlineData("QuantizedMatMul", true)]
    [InlineData("QuantizeAndDequantizeV2", true)]
    [InlineData("FakeQuantWithMinMaxVars", true)]
    [InlineData("Min", false)]
    [InlineData("Reshape", false)]
    [InlineData("Conv2D", false)]
    public void TensorFlow(string op, bool expected) => Assert.Equal(expected, QuantizationOps.IsTensorFlow(op));
}
