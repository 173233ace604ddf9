// SPDX-License-Identifier: MIT
// One ERC-20 per tokenized stock product and chain (architecture section 5).
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Pausable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Pausable.sol";

/// @title IssuerToken: a 1:1-backed tokenized share.
/// @notice Tokens are minted only against references the issuer's ledger assigned (one per mint
/// request), and the chain itself refuses a reference twice, so a retried or replayed mint can never
/// create tokens a second time. Holders redeem by sending tokens to the issuer's redemption vault with
/// their redemption's reference; the issuer burns the vault's tokens, again once per reference.
/// The multiplier (shares per token, after splits and dividends) is published on the token so wallets
/// can show shares-equivalent balances; it changes once per corporate-action reference.
/// @dev Roles are separate so that the hot key that mints and burns (MINTER, BURNER) cannot pause, move
/// the vault or grant roles, and the admin key can stay cold.
contract IssuerToken is ERC20, ERC20Pausable, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant BURNER_ROLE = keccak256("BURNER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant MULTIPLIER_ROLE = keccak256("MULTIPLIER_ROLE");
    /// @notice The multiplier is a fixed-point number with this many decimals (1e18 = one share per token).
    uint8 public constant MULTIPLIER_DECIMALS = 18;

    uint8 private immutable _tokenDecimals;

    /// @notice Where redeemed tokens wait for their burn. Changed only by the admin.
    address public redemptionVault;

    /// @notice References already minted: a reference mints once, ever.
    mapping(bytes32 ref => bool) public mintedRefs;
    /// @notice References already burned from the vault: a reference burns once, ever.
    mapping(bytes32 ref => bool) public burnedRefs;
    /// @notice Shares per token, MULTIPLIER_DECIMALS fixed point. Display only: balances are never scaled.
    uint256 public multiplier = 10 ** MULTIPLIER_DECIMALS;
    /// @notice Corporate-action references already applied: a reference changes the multiplier once, ever.
    mapping(bytes32 ref => bool) public multiplierRefs;

    event Minted(address indexed to, uint256 amount, bytes32 indexed ref);
    event Redeemed(address indexed holder, uint256 amount, bytes32 indexed ref);
    event BurnedFromVault(address indexed vault, uint256 amount, bytes32 indexed ref);
    event RedemptionVaultChanged(address indexed previousVault, address indexed newVault);
    event MultiplierUpdated(uint256 previousMultiplier, uint256 newMultiplier, bytes32 indexed ref);

    error LengthMismatch(uint256 recipients, uint256 amounts, uint256 refs);
    error EmptyBatch();
    error ZeroReference();
    error ZeroAmount();
    error ZeroAddress();
    error ReferenceAlreadyMinted(bytes32 ref);
    error ReferenceAlreadyBurned(bytes32 ref);
    error ReferenceAlreadyApplied(bytes32 ref);

    constructor(
        string memory name_,
        string memory symbol_,
        uint8 decimals_,
        address admin,
        address minter,
        address burner,
        address pauser,
        address vault
    ) ERC20(name_, symbol_) {
        if (admin == address(0) || minter == address(0) || burner == address(0) || pauser == address(0)) {
            revert ZeroAddress();
        }
        _tokenDecimals = decimals_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
        _grantRole(BURNER_ROLE, burner);
        _grantRole(PAUSER_ROLE, pauser);
        // The issuer's operator publishes corporate actions, as it mints; the admin may move the role.
        _grantRole(MULTIPLIER_ROLE, minter);
        _setRedemptionVault(vault);
    }

    function decimals() public view override returns (uint8) {
        return _tokenDecimals;
    }

    /// @notice Mint `amounts[i]` to `to[i]` under reference `refs[i]`. The whole batch reverts if any
    /// reference was minted before (in an earlier transaction or earlier in this batch).
    function mintBatch(address[] calldata to, uint256[] calldata amounts, bytes32[] calldata refs)
        external
        onlyRole(MINTER_ROLE)
    {
        uint256 count = to.length;
        if (amounts.length != count || refs.length != count) {
            revert LengthMismatch(count, amounts.length, refs.length);
        }
        if (count == 0) revert EmptyBatch();
        for (uint256 i = 0; i < count; ++i) {
            bytes32 ref = refs[i];
            if (ref == bytes32(0)) revert ZeroReference();
            if (amounts[i] == 0) revert ZeroAmount();
            if (mintedRefs[ref]) revert ReferenceAlreadyMinted(ref);
            mintedRefs[ref] = true;
            _mint(to[i], amounts[i]);
            emit Minted(to[i], amounts[i], ref);
        }
    }

    /// @notice Send `amount` of the caller's tokens to the redemption vault for the redemption `ref`.
    /// @dev A reference is deliberately not refused twice here: anyone could front-run a holder's
    /// redeem with the same reference and a dust amount to block it. Matching a deposit to its
    /// redemption (and opening a case for one that does not match) is the issuer's watcher's job.
    function redeem(uint256 amount, bytes32 ref) external {
        if (amount == 0) revert ZeroAmount();
        if (ref == bytes32(0)) revert ZeroReference();
        _transfer(_msgSender(), redemptionVault, amount);
        emit Redeemed(_msgSender(), amount, ref);
    }

    /// @notice Burn `amount` of the vault's tokens for the redemption `ref`, once per reference.
    function burnFromVault(uint256 amount, bytes32 ref) external onlyRole(BURNER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        if (ref == bytes32(0)) revert ZeroReference();
        if (burnedRefs[ref]) revert ReferenceAlreadyBurned(ref);
        burnedRefs[ref] = true;
        address vault = redemptionVault;
        _burn(vault, amount);
        emit BurnedFromVault(vault, amount, ref);
    }

    /// @notice Publish a new multiplier for the corporate action `ref`, once per reference.
    function setMultiplier(uint256 newMultiplier, bytes32 ref) external onlyRole(MULTIPLIER_ROLE) {
        if (newMultiplier == 0) revert ZeroAmount();
        if (ref == bytes32(0)) revert ZeroReference();
        if (multiplierRefs[ref]) revert ReferenceAlreadyApplied(ref);
        multiplierRefs[ref] = true;
        emit MultiplierUpdated(multiplier, newMultiplier, ref);
        multiplier = newMultiplier;
    }

    function setRedemptionVault(address vault) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setRedemptionVault(vault);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    function _setRedemptionVault(address vault) private {
        if (vault == address(0)) revert ZeroAddress();
        emit RedemptionVaultChanged(redemptionVault, vault);
        redemptionVault = vault;
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Pausable) {
        super._update(from, to, value);
    }
}
