// SPDX-License-Identifier: MIT
// The reserve behind one product's tokens, published on chain from each signed attestation.
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ReserveFeed: proof of reserve for one tokenized share, Chainlink AggregatorV3-compatible.
/// @notice Each round is one attestation: `answer` is the shares available at the custodians
/// (held less committed out), and `supply` the shares the outstanding tokens need (tokens on every
/// chain times the multiplier), both in nano-shares (decimals() = 9), so a consumer checks
/// answer >= supply. `ref` names the attestation the round came from; the chain refuses a ref twice,
/// so a retried or replayed update cannot add a round. Only the updater role submits.
contract ReserveFeed is AccessControl {
    bytes32 public constant UPDATER_ROLE = keccak256("UPDATER_ROLE");
    uint256 public constant version = 1;

    struct Round {
        int256 answer;
        uint256 supply;
        bytes32 ref;
        uint64 updatedAt;
    }

    uint8 private immutable _decimals;
    string private _description;
    uint80 public latestRound;
    mapping(uint80 => Round) private _rounds;
    mapping(bytes32 => bool) public refSubmitted;

    // Chainlink's aggregator events, so existing tooling follows the feed.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    event ReserveSubmitted(uint80 indexed roundId, int256 reserve, uint256 supply, bytes32 indexed ref);

    error RefAlreadySubmitted(bytes32 ref);
    error NoData(uint80 roundId);
    error NegativeReserve(int256 reserve);

    constructor(string memory description_, uint8 decimals_, address admin, address updater) {
        _description = description_;
        _decimals = decimals_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(UPDATER_ROLE, updater);
    }

    function decimals() external view returns (uint8) {
        return _decimals;
    }

    function description() external view returns (string memory) {
        return _description;
    }

    function submit(int256 reserve, uint256 supply, bytes32 ref) external onlyRole(UPDATER_ROLE) returns (uint80) {
        if (refSubmitted[ref]) revert RefAlreadySubmitted(ref);
        if (reserve < 0) revert NegativeReserve(reserve);
        refSubmitted[ref] = true;
        uint80 roundId = latestRound + 1;
        latestRound = roundId;
        _rounds[roundId] = Round({answer: reserve, supply: supply, ref: ref, updatedAt: uint64(block.timestamp)});
        emit NewRound(roundId, msg.sender, block.timestamp);
        emit AnswerUpdated(reserve, roundId, block.timestamp);
        emit ReserveSubmitted(roundId, reserve, supply, ref);
        return roundId;
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage round = _rounds[roundId];
        if (round.updatedAt == 0) revert NoData(roundId);
        return (roundId, round.answer, round.updatedAt, round.updatedAt, roundId);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(latestRound);
    }

    /// @notice The shares the outstanding tokens needed at a round (nano-shares), and its attestation.
    function roundSupply(uint80 roundId) external view returns (uint256 supply, bytes32 ref) {
        Round storage round = _rounds[roundId];
        if (round.updatedAt == 0) revert NoData(roundId);
        return (round.supply, round.ref);
    }
}
